"""`farm data ...`: import bars into the store, list what it holds, check one symbol."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trainfarm.cli.output import console, print_json, print_table
from trainfarm.shared.data.store import open_store

app = typer.Typer(help="Import, list and check the 5-minute bars in the store.", no_args_is_help=True)


@app.command("import")
def import_(
    path: Annotated[Path, typer.Argument(help="CSV, Parquet or freqtrade .feather file of 5m bars")],
    symbol: Annotated[str, typer.Option("--symbol", "-s", help="market, e.g. BTC/USDT or BTC_USDT")],
    assume_utc: Annotated[
        bool, typer.Option("--assume-utc", help="treat timestamps without a time zone as UTC")
    ] = False,
    replace: Annotated[
        bool, typer.Option("--replace", help="replace the symbol's stored bars instead of merging")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Validate a file and merge its bars into the store (the store is untouched if anything is wrong)."""
    report = open_store().import_file(path, symbol, assume_utc=assume_utc, replace=replace)
    if as_json:
        print_json(report.to_json())
        return
    console.print(
        f"[green]imported[/] {report.rows_in_file:,} bars of [bold]{report.symbol}[/] from {path.name}: "
        f"{report.rows_added:,} new, {report.rows_total:,} stored, "
        f"{report.first:%Y-%m-%d %H:%M} .. {report.last:%Y-%m-%d %H:%M} UTC, {len(report.gaps)} gap(s)"
    )


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="print a JSON array")] = False) -> None:
    """Every stored symbol: first and last bar, rows, gaps."""
    store = open_store()
    summaries = [store.summary(sym) for sym in store.symbols()]
    if as_json:
        print_json([s.to_json() for s in summaries])
        return
    if not summaries:
        console.print("the store is empty; import bars with `farm data import PATH --symbol SYM`")
        return
    print_table(
        "bar store (5m)",
        ["symbol", "first (UTC)", "last (UTC)", "rows", "gaps"],
        [[s.symbol, s.first, s.last, s.rows, len(s.gaps)] for s in summaries],
    )


@app.command("check")
def check(
    symbol: Annotated[str, typer.Argument(help="market, e.g. BTC/USDT")],
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Re-validate one symbol's stored bars and list its gaps."""
    report = open_store().check(symbol)
    if as_json:
        print_json(report.to_json())
        return
    s = report.summary
    console.print(
        f"[green]ok[/] {s.symbol}: {s.rows:,} bars, {s.first:%Y-%m-%d %H:%M} .. {s.last:%Y-%m-%d %H:%M} UTC, "
        f"{len(s.gaps)} gap(s), {report.missing_bars:,} missing bar(s)"
    )
    if s.gaps:
        print_table(
            f"gaps in {s.symbol}",
            ["after (UTC)", "before (UTC)", "missing bars"],
            [[g.after, g.before, g.missing] for g in s.gaps],
        )
