"""`farm retrain`: enqueue retrain runs (where a trigger policy asks, or forced) and follow them to the
end."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from trainfarm.cli.output import console, print_json
from trainfarm.cli.registry_cmds import print_run_metrics
from trainfarm.shared.registry import Registry
from trainfarm.shared.symbols import canonical_symbol
from trainfarm.shared.timeframes import parse_timeframe
from trainfarm.shared.zoo import MODEL_NAMES

_TERMINAL = ("succeeded", "failed")


def retrain(
    symbol: Annotated[str, typer.Argument(help="market, e.g. BTC/USDT")],
    timeframe: Annotated[str, typer.Option("--timeframe", "-t", help="5m, 1h, 12h, 24h or all")] = "all",
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="retrain whatever the trigger policies say (a run under way is still reused)"
        ),
    ] = False,
    meta: Annotated[
        bool,
        typer.Option(
            "--meta",
            help="meta-only: keep the champion's base models, refit stacker and calibration on newer bars",
        ),
    ] = False,
    reason: Annotated[str, typer.Option("--reason", help="recorded with the run")] = "cli",
    wait: Annotated[
        bool, typer.Option("--wait", help="follow the runs to the end, then show metrics")
    ] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="give up waiting after this many seconds")
    ] = 3600,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON array of the runs")] = False,
) -> None:
    """Enqueue a retrain where a trigger policy asks for one (every market with --force).

    Without --force each (symbol, timeframe) is retrained only when one of its trigger policies says
    "retrain" now (`farm triggers` shows them; cooldowns do not hold back a person); the others are
    listed with why not. A run already under way for the market is reused either way. --meta asks for a
    meta-only retrain, which needs a champion and enough bars after its data (`meta_min_rows`).
    """
    from trainfarm.shared.registry import RunKind
    from trainfarm.workers.tasks import submit_retrain

    sym = canonical_symbol(symbol)
    tfs = (
        list(_config_timeframes())
        if timeframe.strip().lower() == "all"
        else [parse_timeframe(timeframe).value]
    )
    asked = {tf: [f"{reason}:forced" if reason == "cli" else reason] for tf in tfs}
    if not force:
        asked = _policy_reasons(sym, tfs, reason)
        for tf in tfs:
            if tf not in asked and not as_json:
                console.print(f"{sym} {tf}: no trigger policy asks for a retrain (--force retrains anyway)")
    kind = RunKind.META if meta else RunKind.FULL
    submitted = [
        submit_retrain(sym, tf, " + ".join(why), kind=kind, hold=not force) for tf, why in asked.items()
    ]
    skipped = [s for s in submitted if s.skipped]
    submitted = [s for s in submitted if not s.skipped]
    if not as_json:
        for s in skipped:
            what = "meta-only retrain" if s.kind is RunKind.META else "retrain"
            console.print(f"{s.symbol} {s.timeframe}: {what} skipped: {s.skipped} (--force retrains anyway)")
        for s in submitted:
            note = " (already running: merged)" if s.merged else ""
            console.print(f"run [bold]{s.run_id}[/] {s.symbol} {s.timeframe} {s.kind}{note}")
    if not wait:
        if as_json:
            print_json(
                [
                    {
                        "id": s.run_id,
                        "symbol": s.symbol,
                        "timeframe": s.timeframe,
                        "kind": s.kind,
                        "merged": s.merged,
                    }
                    for s in submitted
                ]
            )
        return
    failed = follow([s.run_id for s in submitted], timeout=timeout, quiet=as_json)
    registry = Registry.open()
    if as_json:
        print_json([registry.runs.get(s.run_id).to_json() for s in submitted])
    else:
        print_run_metrics([registry.runs.get(s.run_id) for s in submitted])
    if failed:
        raise typer.Exit(1)


def _policy_reasons(symbol: str, timeframes: list[str], reason: str) -> dict[str, list[str]]:
    """The timeframes of ``symbol`` whose trigger policies say "retrain" now, with the policies' names."""
    from trainfarm.shared.connections import redis_connection
    from trainfarm.shared.errors import ConfigError
    from trainfarm.shared.settings import get_settings
    from trainfarm.workers.checks.trigger_check import report

    settings = get_settings()
    config = settings.load_config()
    if symbol not in config.universe.symbols:
        raise ConfigError(
            f"{symbol} is not in the universe ([universe] symbols: {', '.join(config.universe.symbols)}): "
            "no trigger policy watches it; --force retrains it anyway"
        )
    with redis_connection(settings) as client:
        reports = report(Registry.open(), config, client)
    wanted: dict[str, list[str]] = {}
    for r in reports:
        if r.symbol == symbol and r.timeframe in timeframes:
            firing = [f"{reason}:{d.policy}" for d in r.decisions if d.retrain]
            if firing:
                wanted[r.timeframe] = firing
    return wanted


def _config_timeframes() -> list[str]:
    from trainfarm.shared.settings import get_settings

    return [tf.value for tf in get_settings().load_config().universe.timeframes]


def follow(run_ids: list[str], *, timeout: float, quiet: bool = False) -> list[str]:
    """Show per-model progress of ``run_ids`` until all end; returns the ids of failed runs."""
    registry = Registry.open()
    deadline = time.monotonic() + timeout
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} models"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        disable=quiet,
    ) as progress:
        bars = {
            rid: progress.add_task(_label(registry, rid), total=len(MODEL_NAMES), status="queued")
            for rid in run_ids
        }
        while True:
            done = []
            for rid, bar in bars.items():
                run = registry.runs.get(rid)
                finished = sum(1 for r in registry.runs.base_results(rid) if r.status == "succeeded")
                status = run.status if run.status != "failed" else f"failed: {run.failed_model or ''}"
                progress.update(bar, completed=finished, status=status)
                done.append(run.status in _TERMINAL)
            if all(done):
                break
            if time.monotonic() > deadline:
                console.print(f"[yellow]stopped waiting after {timeout:.0f}s; the runs go on[/]")
                break
            time.sleep(0.5)
    return [rid for rid in run_ids if registry.runs.get(rid).status == "failed"]


def _label(registry: Registry, run_id: str) -> str:
    run = registry.runs.get(run_id)
    return f"{run.symbol} {run.timeframe} {run_id[:8]}"


def register(app: typer.Typer) -> None:
    """Add `retrain` to the main `farm` app."""
    app.command("retrain")(retrain)
