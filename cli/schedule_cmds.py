"""`farm schedule`: beat's coming retrain fires (full, meta-only), their estimated work, any pile-up."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from redbeat.decoder import RedBeatJSONDecoder

from trainfarm.beat.plan import Entry, plan, run_seconds
from trainfarm.beat.schedule import (
    KEY_PREFIX,
    TRIGGER_CHECK_ENTRY,
    beat_schedule,
    full_retrain_entry,
    meta_retrain_entry,
)
from trainfarm.cli.output import console, print_json, print_table
from trainfarm.shared.connections import redis_connection
from trainfarm.shared.registry import Registry
from trainfarm.shared.settings import get_settings
from trainfarm.workers.celery_app import inspect_workers

#: Finished runs per timeframe read to estimate a run's duration.
HISTORY = 20


def _last_run(raw: bytes | str | None) -> datetime | None:
    """The ``last_run_at`` redbeat stored in an entry's ``meta`` field (None: never ran)."""
    if not raw:
        return None
    meta = json.loads(raw, cls=RedBeatJSONDecoder)
    value = meta.get("last_run_at") if isinstance(meta, dict) else None
    return value if isinstance(value, datetime) else None


def _workers() -> int | None:
    """Pool processes of the workers that answer a ping within a second (None: none answered)."""
    _, stats = inspect_workers(1.0)
    total = sum(int(s.get("pool", {}).get("max-concurrency", 1)) for s in stats.values())
    return total or None


def schedule(
    days: Annotated[float, typer.Option("--days", min=0.01, help="how far ahead")] = 2.0,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="worker processes (default: those answering)")
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """The next full-retrain fires of every timeframe, with durations from the registry's history."""
    settings = get_settings()
    config = settings.load_config()
    registry = Registry.open()
    symbols = len(config.universe.symbols)
    entries = [
        Entry(full_retrain_entry(tf.value), tf.value, config.params(tf).cadence, symbols)
        for tf in config.universe.timeframes
    ]
    entries += [
        Entry(meta_retrain_entry(tf.value), tf.value, every, symbols, kind="meta")
        for tf in config.universe.timeframes
        if (every := config.params(tf).meta_cadence) is not None
    ]
    with redis_connection(settings) as client:
        last = {e.name: _last_run(client.hget(f"{KEY_PREFIX}{e.name}", "meta")) for e in entries}
    durations: dict[str, list[float]] = {}
    for e in entries:
        runs = [r for r in registry.runs.newest(timeframe=e.timeframe, limit=4 * HISTORY) if r.kind == e.kind]
        durations[e.work_key] = [s for s in (r.seconds for r in runs[:HISTORY]) if s is not None]
    answered = None if workers is not None else _workers()
    capacity = workers or answered or 1
    fires = plan(
        entries,
        last,
        datetime.now(UTC),
        horizon=timedelta(days=days),
        seconds_per_run=run_seconds(durations),
        capacity=capacity,
    )
    check_every = beat_schedule(config)[TRIGGER_CHECK_ENTRY]["schedule"]
    source = "--workers" if workers else ("workers answering" if answered else "assumed")
    if json_out:
        print_json(
            {
                "capacity": capacity,
                "capacity_source": source,
                "trigger_check_every_s": check_every.total_seconds(),
                "fires": [f.to_json() for f in fires],
            }
        )
        return
    rows = [
        [
            f.at.strftime("%Y-%m-%d %H:%M"),
            f.entry,
            f.runs,
            "unknown" if f.work_s is None else f"{f.work_s:.0f}",
            f"{f.backlog_s:.0f}",
            "[red]OVER CAPACITY[/]" if f.over_capacity else "ok",
        ]
        for f in fires
    ]
    print_table(
        f"retrain fires in the next {days:g} day(s) on {capacity} worker process(es) "
        "(a meta-only fire skips the markets not due)",
        ["at (UTC)", "entry", "runs", "work (run-s)", "backlog (s)", "load"],
        rows,
    )
    console.print(f"check-triggers every {check_every}; durations from up to {HISTORY} finished runs each")


def register(app: typer.Typer) -> None:
    """Add `schedule` to the main `farm` app."""
    app.command("schedule")(schedule)
