"""`farm dataset ...`: build and list dataset snapshots (what a retrain run trains on)."""

from __future__ import annotations

from typing import Annotated

import typer

from trainfarm.cli.output import console, print_json, print_table
from trainfarm.shared.data.store import open_store
from trainfarm.shared.dataset.snapshot import DatasetSnapshot, list_snapshots, snapshot_from_store
from trainfarm.shared.settings import get_settings
from trainfarm.shared.symbols import canonical_symbol
from trainfarm.shared.timeframes import Timeframe, parse_timeframe

app = typer.Typer(help="Build and list dataset snapshots.", no_args_is_help=True)


def timeframes_option(value: str) -> list[Timeframe]:
    """Parse --timeframe: one timeframe, or 'all' for the universe's timeframes."""
    if value.strip().lower() == "all":
        return list(get_settings().load_config().universe.timeframes)
    return [parse_timeframe(value)]


def snapshot_row(s: DatasetSnapshot) -> list[object]:
    """One table row describing a snapshot."""
    return [
        s.symbol,
        s.timeframe,
        s.rows,
        s.split_rows["train"],
        s.split_rows["calibration"],
        s.split_rows["test"],
        s.first_bar[:10],
        s.last_bar[:10],
        s.content_hash[:10],
    ]


SNAPSHOT_COLUMNS = ["symbol", "tf", "rows", "train", "cal", "test", "first", "last", "hash"]


@app.command("build")
def build(
    symbol: Annotated[str, typer.Argument(help="market, e.g. BTC/USDT")],
    timeframe: Annotated[str, typer.Option("--timeframe", "-t", help="5m, 1h, 12h, 24h or all")] = "all",
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON array")] = False,
) -> None:
    """Resample, compute features and labels, split, and write content-hashed snapshots."""
    settings = get_settings()
    config = settings.load_config()
    sym = canonical_symbol(symbol)
    store = open_store()
    snapshots = [
        snapshot_from_store(store, symbol=sym, timeframe=tf, config=config, root=settings.datasets_dir)
        for tf in timeframes_option(timeframe)
    ]
    if as_json:
        print_json([s.__dict__ for s in snapshots])
        return
    print_table(f"dataset snapshots of {sym}", SNAPSHOT_COLUMNS, [snapshot_row(s) for s in snapshots])
    console.print(f"written under {settings.datasets_dir}")


@app.command("list")
def list_(
    symbol: Annotated[str | None, typer.Argument(help="only this market")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print a JSON array")] = False,
) -> None:
    """Every snapshot written so far."""
    sym = canonical_symbol(symbol) if symbol else None
    snapshots = list_snapshots(get_settings().datasets_dir, sym)
    if as_json:
        print_json([s.__dict__ for s in snapshots])
        return
    print_table("dataset snapshots", SNAPSHOT_COLUMNS, [snapshot_row(s) for s in snapshots])
