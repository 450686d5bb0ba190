"""`farm promote VERSION`, `farm rollback SYM TF`, `farm prune SYM TF`: move a market's champion by hand.

Registered on the main app by :func:`register`. ``--json`` prints one object: a
:class:`~trainfarm.shared.champions.publish.PromotionResult` (promote, rollback) or a
:class:`~trainfarm.shared.champions.publish.PruneResult`. Every refusal (unknown or pruned version, tampered
pack, nothing to roll back to, Redis down after the registry changed) is a farm error: one line on stderr,
exit status 1.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from trainfarm.cli.output import console, print_json
from trainfarm.shared.champions.publish import PromotionResult, promote_version, prune, rollback
from trainfarm.shared.registry import PromotionReason
from trainfarm.shared.symbols import canonical_symbol
from trainfarm.shared.timeframes import parse_timeframe


def _report(result: PromotionResult, as_json: bool) -> None:
    if as_json:
        print_json(result.to_json())
        return
    market = f"{result.symbol} {result.timeframe}"
    if not result.changed:
        since = f"{result.promoted_at:%Y-%m-%d %H:%M:%S} UTC"
        console.print(f"{market}: {result.version} is the champion already (since {since})")
    else:
        verb = "rolled back" if result.event == "rollback" else "promoted"
        console.print(
            f"{verb} {market}: {result.previous_version or '(none)'} -> [bold]{result.version}[/] "
            f"({result.reason})",
            soft_wrap=True,
        )
    console.print(f"redis: {result.announced}")


def promote(
    version: Annotated[str, typer.Argument(help="version id, as `farm models SYM TF` lists it")],
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Make VERSION the champion of its market (manual promotion: overrides a gate rejection)."""
    _report(promote_version(version.strip(), PromotionReason.MANUAL), as_json)


def rollback_cmd(
    symbol: Annotated[str, typer.Argument(help="market, e.g. BTC/USDT")],
    timeframe: Annotated[str, typer.Argument(help="5m, 1h, 12h or 24h")],
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Make the previous champion the champion again (running it twice returns to where you started)."""
    _report(rollback(canonical_symbol(symbol), parse_timeframe(timeframe)), as_json)


def prune_cmd(
    symbol: Annotated[str, typer.Argument(help="market, e.g. BTC/USDT")],
    timeframe: Annotated[str, typer.Argument(help="5m, 1h, 12h or 24h")],
    keep: Annotated[
        int | None, typer.Option("--keep", min=1, help="newest packs to keep (default: retention config)")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the result as JSON")] = False,
) -> None:
    """Delete old packs of a market; the champion and the previous champion are always kept."""
    result = prune(canonical_symbol(symbol), parse_timeframe(timeframe), keep=keep)
    if as_json:
        print_json(asdict(result))
        return
    market = f"{result.symbol} {result.timeframe}"
    if not result.deleted:
        console.print(f"{market}: nothing to prune (keeping the newest {result.keep})")
        return
    console.print(f"{market}: deleted {len(result.deleted)} pack(s): {', '.join(result.deleted)}")


def register(app: typer.Typer) -> None:
    """Add `promote`, `rollback` and `prune` to the main `farm` app."""
    app.command("promote")(promote)
    app.command("rollback")(rollback_cmd)
    app.command("prune")(prune_cmd)
