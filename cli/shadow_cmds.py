"""`farm shadow`: start a challenger by hand, stop one, list them, or run the shadow check now.

* ``farm shadow VERSION``: VERSION becomes its market's challenger, scored by the bots beside the champion
  (the active challenger, if any, is superseded);
* ``farm shadow --stop SYMBOL TF``: the market's challenger ends (``stopped``), its version unchanged;
* ``farm shadow --check``: ingest the bots' paired scores and decide what can be decided (what beat's
  ``check-shadow`` entry does every ``[beat] shadow_check``);
* ``farm shadow``: the active challengers and the last decisions.

Every refusal (no champion to compare with, the champion itself, a pruned or tampered pack, no active
challenger) is a farm error: one line on stderr, exit status 1. ``--json`` prints one object.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from trainfarm.cli.output import console, print_json
from trainfarm.shared.champions.shadow import start_challenger, stop_challenger
from trainfarm.shared.connections import redis_connection
from trainfarm.shared.registry import ChallengerRecord, Registry
from trainfarm.shared.settings import get_settings
from trainfarm.shared.symbols import canonical_symbol
from trainfarm.shared.timeframes import parse_timeframe
from trainfarm.workers.checks import shadow_check


def shadow(
    version: Annotated[str | None, typer.Argument(help="version to make its market's challenger")] = None,
    stop: Annotated[
        tuple[str, str] | None,
        typer.Option(
            "--stop", metavar="SYMBOL TF", help="end the market's challenger (e.g. --stop BTC/USDT 1h)"
        ),
    ] = None,
    check: Annotated[
        bool, typer.Option("--check", help="ingest the bots' paired scores and decide challengers now")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Start, stop or list challengers (shadow mode: scored live beside the champion before replacing it)."""
    if (version is not None) + (stop is not None) + check > 1:
        raise typer.BadParameter("give a VERSION, --stop SYMBOL TF or --check, not several")
    registry = Registry.open()
    if version is not None:
        _show(start_challenger(version.strip(), registry=registry), "challenger started", as_json)
    elif stop is not None:
        sym, tf = canonical_symbol(stop[0]), parse_timeframe(stop[1]).value
        _show(stop_challenger(sym, tf, registry=registry), "challenger stopped", as_json)
    elif check:
        settings = get_settings()
        with redis_connection(settings) as client:
            ingested, report = shadow_check.run(registry, client, settings)
        result = {"ingested": asdict(ingested), **asdict(report)}
        if as_json:
            print_json(result)
            return
        console.print(f"ingested {ingested.inserted} paired bar(s) ({ingested.duplicates} duplicates, "
                      f"{ingested.malformed} malformed)")  # fmt: skip
        for decided in report.decided + report.ended:
            console.print(f"{decided['symbol']} {decided['timeframe']}: {decided['version']} "
                          f"{decided['outcome']}: {decided['reason']}")  # fmt: skip
        for waiting in report.waiting:
            console.print(f"{waiting['market']}: {waiting['version']} waits: {waiting['reason']}")
        for started in report.started:
            console.print(f"challenger {started} started")
        for error in report.errors:
            console.print(f"[red]{error}[/]")
    else:
        _list(registry.shadows.history(limit=20), as_json)


def _show(record: ChallengerRecord, what: str, as_json: bool) -> None:
    if as_json:
        print_json(record.to_json())
        return
    console.print(
        f"{record.symbol} {record.timeframe}: {what}: [bold]{record.version}[/] against champion "
        f"{record.champion_version}" + (f" ({record.reason})" if record.reason else "")
    )


def _list(records: list[ChallengerRecord], as_json: bool) -> None:
    if as_json:
        print_json([r.to_json() for r in records])
        return
    if not records:
        console.print("no challengers yet")
        return
    table = Table("market", "challenger", "champion", "started", "outcome", "reason")
    for r in records:
        table.add_row(
            f"{r.symbol} {r.timeframe}",
            r.version,
            r.champion_version,
            f"{r.started_at:%Y-%m-%d %H:%M} ({r.started_by})",
            r.outcome.value if r.outcome else "active",
            r.reason or "",
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add `shadow` to the main `farm` app."""
    app.command("shadow")(shadow)
