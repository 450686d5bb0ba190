"""Retrain trigger policies: for one market, each says whether to retrain now, with its value and threshold.

A policy is a plain function of a :class:`Market` (what the registry knows of one symbol and timeframe)
and the timeframe's parameters; it returns a :class:`Decision` that `farm triggers` shows as it is and the
periodic check (:mod:`trainfarm.workers.triggers`) acts on. The policies so far:

``no_champion``
    the market has no champion yet: retrain until one passes the gates;
``stale``
    the champion is older (by the time its version was built) than the timeframe's ``freshness_limit``.

A disabled policy (``[timeframes.<tf>.triggers]``) still reports, with ``retrain`` false and "off". Live
win rate, live Sharpe, feature drift and calibration drift need the bots' outcomes, which the farm does
not ingest yet; they will be policies of the same shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime

from trainfarm.shared.config import TimeframeParams
from trainfarm.shared.timeframes import Timeframe


@dataclass(frozen=True)
class Market:
    """What the policies see of one (symbol, timeframe) at ``now``."""

    symbol: str
    timeframe: Timeframe
    now: datetime
    champion: str | None = None  #: the champion's version id
    champion_built_at: datetime | None = None  #: when that version was built (its data ends about then)


@dataclass(frozen=True)
class Decision:
    """One policy's verdict on one market: ``retrain`` when ``value`` crossed ``threshold``."""

    policy: str
    retrain: bool
    value: float | None
    threshold: float | None
    detail: str

    def to_json(self) -> dict[str, object]:
        """A plain dict (what `farm triggers --json` prints per policy)."""
        return asdict(self)


Policy = Callable[[Market, TimeframeParams], Decision]


def no_champion(market: Market, params: TimeframeParams) -> Decision:
    """Retrain a market that has no champion."""
    if not params.triggers.no_champion:
        return Decision("no_champion", False, None, None, "off")
    if market.champion is None:
        return Decision("no_champion", True, None, None, "no champion yet")
    return Decision("no_champion", False, None, None, f"champion {market.champion}")


def stale(market: Market, params: TimeframeParams) -> Decision:
    """Retrain when the champion's age (hours since it was built) exceeds the freshness limit."""
    limit_h = params.freshness_limit_td.total_seconds() / 3600.0
    if not params.triggers.stale:
        return Decision("stale", False, None, limit_h, "off")
    if market.champion is None or market.champion_built_at is None:
        return Decision("stale", False, None, limit_h, "no champion to age")
    age_h = (market.now - market.champion_built_at).total_seconds() / 3600.0
    verdict = "older than" if age_h > limit_h else "within"
    detail = f"champion {market.champion} is {age_h:.1f} h old, {verdict} the {params.freshness_limit} limit"
    return Decision("stale", age_h > limit_h, age_h, limit_h, detail)


#: Every policy, in the order `farm triggers` shows them.
POLICIES: tuple[Policy, ...] = (no_champion, stale)


def evaluate(market: Market, params: TimeframeParams) -> list[Decision]:
    """Every policy's decision on ``market``."""
    return [policy(market, params) for policy in POLICIES]


__all__ = ["POLICIES", "Decision", "Market", "Policy", "evaluate", "no_champion", "stale"]
