"""`farm triggers`: every market's trigger policies, each with its value, threshold and decision."""

from __future__ import annotations

from typing import Annotated

import typer

from trainfarm.cli.output import print_json, print_table
from trainfarm.shared.connections import redis_connection
from trainfarm.shared.registry import Registry
from trainfarm.shared.settings import get_settings
from trainfarm.workers.checks.trigger_check import report


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def triggers(json_out: Annotated[bool, typer.Option("--json", help="print JSON")] = False) -> None:
    """Show every (symbol, timeframe) with each trigger policy's value, threshold and decision."""
    settings = get_settings()
    with redis_connection(settings) as client:
        reports = report(Registry.open(), settings.load_config(), client)
    if json_out:
        print_json([r.to_json() for r in reports])
        return
    rows: list[list[object]] = []
    for r in reports:
        if r.held is not None:
            rows.append([r.symbol, r.timeframe, r.held.flag, "-", "-", "HELD", r.held.reason])
        for d in r.decisions:
            wait = r.cooldown_s.get(d.policy, 0)
            flag = "FLAG" if d.flagged else "-"
            verdict = ("RETRAIN" if d.retrain else flag) + (f" (cooling {wait}s)" if wait else "")
            if r.held is not None and d.retrain:
                verdict = "held"
            value, threshold = _number(d.value), _number(d.threshold)
            rows.append([r.symbol, r.timeframe, d.policy, value, threshold, verdict, d.detail])
    print_table(
        "trigger policies (beat's check-triggers fires each RETRAIN once per cooldown; FLAG never retrains; "
        "a HELD market fires nothing until its hold is released)",
        ["symbol", "tf", "policy", "value", "threshold", "decision", "detail"],
        rows,
    )


def register(app: typer.Typer) -> None:
    """Add `triggers` to the main `farm` app."""
    app.command("triggers")(triggers)
