"""`farm replay`: the farm run over its own history, policy against policy (docs/replay.md).

``farm replay SYMBOL -t TF --start DATE --end DATE [--cadence D]`` creates a replay and drives it to the
end (its points train on the workers; this process decides, scores and stores the result); ``list``,
``show``, ``resume`` and ``delete`` manage replays. Ctrl-C leaves the replay interrupted: its submitted
points go on training, and ``farm replay resume ID`` picks it up without training any point twice.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from trainfarm.cli.options import utc_time
from trainfarm.cli.output import console, print_json, print_table
from trainfarm.shared.registry import Registry, ReplayRecord
from trainfarm.shared.replay.clock import replay_dir
from trainfarm.shared.replay.metrics import POLICIES
from trainfarm.shared.settings import get_settings
from trainfarm.shared.timeframes import parse_duration

#: The policies whose Sharpe `farm replay list` shows (the prior never trades: always 0).
SHARPE_COLUMNS = tuple(p for p in POLICIES if p != "prior")


class _ReplayGroup(TyperGroup):
    """``farm replay SYMBOL ...`` is ``farm replay run SYMBOL ...``; ``list``, ``show``... are commands."""

    # ctx: typer's own click Context (typer vendors click); only passed on.
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and not args[0].startswith("-") and args[0] not in self.commands:
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=_ReplayGroup,
    help="Replay the farm over its history: gated, always, static and prior policies, bar by bar.",
    no_args_is_help=True,
)


@app.command("run")
def run(
    symbol: Annotated[str, typer.Argument(help="market, e.g. BTC/USDT")],
    timeframe: Annotated[str, typer.Option("--timeframe", "-t", help="5m, 1h, 12h or 24h")],
    start: Annotated[str, typer.Option("--start", help="first retrain point (UTC date or time)")],
    end: Annotated[str, typer.Option("--end", help="end of the scored period (UTC date or time)")],
    cadence: Annotated[
        str | None, typer.Option("--cadence", help="time between retrains (default: the timeframe's cadence)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Replay SYMBOL at TF: retrain at every cadence step in [start, end), score five policies bar by bar."""
    from trainfarm.workers.replay_runs import create_replay

    replay = create_replay(
        symbol,
        timeframe,
        start=utc_time(start, "--start"),
        end=utc_time(end, "--end"),
        cadence=parse_duration(cadence) if cadence else None,
    )
    points = len(Registry.open().replays.points(replay.id))
    if not as_json:
        console.print(
            f"replay [bold]{replay.id}[/]: {replay.symbol} {replay.timeframe}, {points} retrain points from "
            f"{replay.start:%Y-%m-%d %H:%M} to {replay.end:%Y-%m-%d %H:%M}"
        )
    _drive(replay, as_json=as_json)


@app.command("resume")
def resume(
    replay_id: Annotated[str, typer.Argument(help="replay id (or a prefix)")],
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Drive an interrupted or failed replay to the end: trained points are reused, failed ones retried."""
    _drive(Registry.open().replays.get(replay_id), as_json=as_json)


def _drive(replay: ReplayRecord, *, as_json: bool) -> None:
    from trainfarm.shared.connections import redis_connection
    from trainfarm.workers.replay_runs import Progress, drive, interrupt
    from trainfarm.workers.replay_tasks import submit_point
    from trainfarm.workers.runs import broker_holds_run

    def report(p: Progress) -> None:
        if as_json or p.decision is None or p.at is None:
            return
        verdict = "promoted" if p.decision.passed else "kept " + (p.decision.champion_before or "no model")
        console.print(
            f"  point {p.decided}/{p.total} {p.at:%Y-%m-%d %H:%M}: gated {verdict} ({p.trained} trained)"
        )

    try:
        with redis_connection(decode_responses=False) as client:
            finished = drive(
                replay.id,
                submit=submit_point,
                in_flight=lambda point: broker_holds_run(client, point),
                progress=report,
            )
    except KeyboardInterrupt:
        interrupt(replay.id, "interrupted (Ctrl-C); its submitted points go on training")
        console.print(f"interrupted: `farm replay resume {replay.id}` continues where it stopped")
        raise typer.Exit(130) from None
    _show(finished, as_json=as_json)


@app.command("list")
def list_replays(as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """The replays, newest first."""
    replays = Registry.open().replays.recent()
    if as_json:
        print_json([r.to_json() for r in replays])
        return
    print_table(
        "replays",
        ["id", "market", "period", "cadence", "status", *(f"{p} sharpe" for p in SHARPE_COLUMNS)],
        [
            [
                r.id,
                f"{r.symbol} {r.timeframe}",
                f"{r.start:%Y-%m-%d} .. {r.end:%Y-%m-%d}",
                r.cadence_text,
                r.status.value,
                *(_policy(r, p).get("sharpe") for p in SHARPE_COLUMNS),
            ]
            for r in replays
        ],
    )


@app.command("show")
def show(
    replay_id: Annotated[str, typer.Argument(help="replay id (or a prefix)")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
) -> None:
    """One replay: its points, the five policies side by side, where its plot is."""
    _show(Registry.open().replays.get(replay_id), as_json=as_json)


@app.command("delete")
def delete(replay_id: Annotated[str, typer.Argument(help="replay id (or a prefix)")]) -> None:
    """Remove a replay: its records, snapshots, packs, scores and plot (nothing live is touched)."""
    from trainfarm.workers.replay_runs import delete_replay

    gone = delete_replay(replay_id)
    console.print(f"deleted replay {gone.id} ({gone.symbol} {gone.timeframe})")


def replay_json(replay: ReplayRecord) -> dict[str, Any]:
    """What `farm replay show --json` prints: the replay, its result's keys at the top, its points."""
    folder = replay_dir(get_settings().artifacts_dir, replay.id)
    record = replay.to_json()
    result = record.pop("result") or {}
    out: dict[str, Any] = record | (result if isinstance(result, dict) else {})
    if "plot" in out:
        out["plot"] = str(folder / str(out["plot"]))
        out["scores"] = str(folder / str(out["scores"]))
    # Each point's gate report is in the registry; the result's "decisions" summarise them.
    points = Registry.open().replays.points(replay.id)
    out["points"] = [{k: v for k, v in p.to_json().items() if k != "decision"} for p in points]
    return out


def _policy(replay: ReplayRecord, policy: str) -> dict[str, Any]:
    policies = (replay.result or {}).get("policies")
    found = policies.get(policy) if isinstance(policies, dict) else None
    return found if isinstance(found, dict) else {}


def _show(replay: ReplayRecord, *, as_json: bool) -> None:
    if as_json:
        print_json(replay_json(replay))
        return
    console.print(
        f"replay [bold]{replay.id}[/]: {replay.symbol} {replay.timeframe} {replay.start:%Y-%m-%d} .. "
        f"{replay.end:%Y-%m-%d}, retrain every {replay.cadence_text}; {replay.status.value}"
        + (f": {replay.error}" if replay.error else "")
    )
    if replay.result is None:
        return
    keys = [
        "logloss",
        "brier",
        "ece",
        "sharpe",
        "max_drawdown",
        "signals",
        "win_rate",
        "promotions",
        "scored_bars",
    ]
    print_table(
        "policies",
        ["policy", *keys],
        [[policy, *(_round(_policy(replay, policy).get(k)) for k in keys)] for policy in POLICIES],
    )
    console.print(
        f"plot: {replay_dir(get_settings().artifacts_dir, replay.id) / str(replay.result.get('plot'))}"
    )


def _round(value: object) -> object:
    return round(value, 4) if isinstance(value, float) else value


def register(root: typer.Typer) -> None:
    """Attach `farm replay` to the root app."""
    root.add_typer(app, name="replay")
