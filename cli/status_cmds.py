"""`farm status`: workers and queues, runs under way, every market's champion, and the bots."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated

import typer

from trainfarm.cli.output import console, print_json, print_table
from trainfarm.shared.connections import redis_connection
from trainfarm.shared.data.freshness import human_age
from trainfarm.shared.registry import Registry
from trainfarm.shared.settings import get_settings
from trainfarm.workers.celery_app import inspect_workers
from trainfarm.workers.status import FarmStatus, farm_status


def _num(value: float | None, fmt: str = ".1f") -> str:
    return "-" if value is None else format(value, fmt)


def status(
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1, help="seconds to wait for workers")] = 1.0,
) -> None:
    """Workers, queue depths, running runs, champions against their freshness limits, bots."""
    settings = get_settings()
    queues, stats = inspect_workers(timeout)
    with redis_connection(settings) as client:
        config = settings.load_config()
        report = farm_status(Registry.open(), config, client, active_queues=queues, stats=stats)
    if json_out:
        print_json(report.to_json())
        return
    _print(report)


def _print(report: FarmStatus) -> None:
    print_table(
        "workers (answering within the timeout)",
        ["worker", "queues", "processes"],
        [[w.name, ",".join(w.queues), w.concurrency or "-"] for w in report.workers],
    )
    console.print("queues: " + ", ".join(f"{q} {n}" for q, n in report.queues.items()))
    runs = []
    for r in report.runs:
        reasons = r["reasons"]
        age = r["age_s"]
        runs.append(
            [
                r["id"],
                r["symbol"],
                r["timeframe"],
                r["stage"],
                " | ".join(str(x) for x in reasons) if isinstance(reasons, list) else "-",
                _num(age if isinstance(age, float) else None, ".0f"),
            ]
        )
    print_table("runs under way", ["id", "symbol", "tf", "stage", "reasons", "age (s)"], runs)
    markets = []
    for m in report.markets:
        fresh = "[red]STALE[/]" if m.stale else ("-" if m.champion is None else "ok")
        markets.append(
            [
                m.symbol,
                m.timeframe,
                m.champion or "-",
                _num(m.age_h),
                _num(m.freshness_limit_h, ".0f"),
                fresh,
                m.last_version or "-",
                m.last_verdict or "-",
                _skew_cell(m.skew),
                _data_cell(m.data_newest, m.data_age_s, m.data_stale),
                f"[red]HELD[/] {m.held}" if m.held else "-",
                _challenger_cell(m.challenger, m.last_challenger),
            ]
        )
    print_table(
        "markets",
        ["symbol", "tf", "champion", "age (h)", "limit (h)", "fresh", "last version", "last gates", "skew",
         "newest bar", "held", "challenger"],
        markets,
    )  # fmt: skip
    bots = [
        [b.bot_id, b.symbol, b.timeframe, b.version or "-", _num(b.seen_s_ago), ",".join(b.flags) or "ok",
         b.last_error or "-"]
        for b in report.bots
    ]  # fmt: skip
    print_table(
        "bots (from their heartbeats)",
        ["bot", "symbol", "tf", "version", "seen (s ago)", "flags", "error"],
        bots,
    )


def _data_cell(newest: datetime | None, age_s: float | None, stale: bool) -> str:
    """The symbol's newest bar close and its age, red when its source let it go stale."""
    if newest is None or age_s is None:
        return "[red]no bars[/]" if stale else "no bars"
    text = f"{newest:%Y-%m-%d %H:%M} ({human_age(timedelta(seconds=age_s))} ago)"
    return f"[red]STALE[/] {text}" if stale else text


def _skew_cell(skew: dict[str, object] | None) -> str:
    """The train/serve skew flag: mismatching of checked rows (and the worst feature), or why none."""
    if skew is None:
        return "-"
    if skew.get("note"):
        return str(skew["note"])
    counts = f"{skew.get('mismatched')}/{skew.get('checked')}"
    unchecked = f", {skew['not_checked']} not checked" if skew.get("not_checked") else ""
    if skew.get("flagged"):
        return f"[red]SKEW[/] {counts} ({skew.get('worst_feature') or '?'}){unchecked}"
    return f"ok {counts}{unchecked}"


def register(app: typer.Typer) -> None:
    """Add `status` to the main `farm` app."""
    app.command("status")(status)


def _challenger_cell(active: dict[str, object] | None, last: dict[str, object] | None) -> str:
    """The active challenger and its bars so far, else the last one's outcome, else "-"."""
    if active is not None:
        return f"{active['version']} ({active['bars']}/{active['min_bars']} bars)"
    if last is not None:
        return f"last: {last['version']} {last['outcome']}"
    return "-"
