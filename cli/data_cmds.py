"""`farm data ...`: import bars into the store, list what it holds, check one symbol."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from trainfarm.cli.options import utc_time
from trainfarm.cli.output import console, fail, print_json, print_table
from trainfarm.shared.data.intervals import parse_interval
from trainfarm.shared.data.store import open_store
from trainfarm.shared.data.sync import Outcome, sync_all
from trainfarm.shared.settings import get_settings

app = typer.Typer(
    help="Import, sync, list and check the bars in the store (5m, 1h or 1d per symbol).", no_args_is_help=True
)


@app.command("import")
def import_(
    path: Annotated[
        Path, typer.Argument(help="CSV, Parquet or freqtrade .feather file of 5m, 1h or 1d bars")
    ],
    symbol: Annotated[str, typer.Option("--symbol", "-s", help="market, e.g. BTC/USDT or BTC_USDT")],
    interval: Annotated[
        str | None,
        typer.Option("--interval", "-i", help="the file's bar interval: 5m, 1h or 1d (default: its spacing)"),
    ] = None,
    assume_utc: Annotated[
        bool, typer.Option("--assume-utc", help="treat timestamps without a time zone as UTC")
    ] = False,
    replace: Annotated[
        bool,
        typer.Option(
            "--replace", help="replace the symbol's stored bars of that interval instead of merging"
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the report as JSON")] = False,
) -> None:
    """Validate a file and merge its bars into the store (the store is untouched if anything is wrong)."""
    report = open_store().import_file(
        path,
        symbol,
        interval=parse_interval(interval) if interval else None,
        assume_utc=assume_utc,
        replace=replace,
    )
    if as_json:
        print_json(report.to_json())
        return
    console.print(
        f"[green]imported[/] {report.rows_in_file:,} {report.interval} bars of [bold]{report.symbol}[/] "
        f"from {path.name}: "
        f"{report.rows_added:,} new, {report.rows_total:,} stored, "
        f"{report.first:%Y-%m-%d %H:%M} .. {report.last:%Y-%m-%d %H:%M} UTC, {len(report.gaps)} gap(s)"
    )


@app.command("sync")
def sync(
    symbol: Annotated[
        str | None, typer.Argument(help="market, e.g. BTC/USDT (default: the universe's)")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="fetch from this date (default: the newest stored bar)")
    ] = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="take a source's revised bars instead of refusing them")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the reports as a JSON array")] = False,
) -> None:
    """Append new closed bars from each symbol's configured source ([data] source in the config file).

    A source that cannot answer, or whose bars are refused, is named in one line; nothing is written for
    that symbol, and the command exits 1.
    """
    settings = get_settings()
    reports = sync_all(
        open_store(settings),
        settings.load_config(),
        [symbol] if symbol else None,
        since=utc_time(since, "--since") if since else None,
        replace=replace,
    )
    if as_json:
        print_json([r.to_json() for r in reports])
    else:
        for report in reports:
            if report.ok:
                style = "yellow" if report.outcome is Outcome.NO_SOURCE else "green"
                console.print(f"[{style}]{report.outcome}[/] {report.line()}", soft_wrap=True)
            else:
                fail(report.line())
    if not all(r.ok for r in reports):
        raise typer.Exit(1)


@app.command("list")
def list_(as_json: Annotated[bool, typer.Option("--json", help="print a JSON array")] = False) -> None:
    """Every stored symbol and interval: first and last bar, rows, gaps."""
    store = open_store()
    summaries = [summary for sym in store.symbols() for summary in store.summaries(sym)]
    if as_json:
        print_json([s.to_json() for s in summaries])
        return
    if not summaries:
        console.print("the store is empty; import bars with `farm data import PATH --symbol SYM`")
        return
    print_table(
        "bar store",
        ["symbol", "interval", "first (UTC)", "last (UTC)", "rows", "gaps"],
        [[s.symbol, s.interval.value, s.first, s.last, s.rows, len(s.gaps)] for s in summaries],
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
    for s in report.summaries:
        console.print(
            f"[green]ok[/] {s.symbol} {s.interval}: {s.rows:,} bars, "
            f"{s.first:%Y-%m-%d %H:%M} .. {s.last:%Y-%m-%d %H:%M} UTC, "
            f"{len(s.gaps)} gap(s), {s.missing_bars:,} missing bar(s)"
        )
        if s.gaps:
            print_table(
                f"gaps in {s.symbol} {s.interval}",
                ["after (UTC)", "before (UTC)", "missing bars"],
                [[g.after, g.before, g.missing] for g in s.gaps],
            )
