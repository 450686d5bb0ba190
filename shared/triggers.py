"""Retrain trigger policies: for one market, each says whether to retrain now, with its value and threshold.

A policy is a plain function of a :class:`Market` (what the registry knows of one symbol and timeframe)
and the timeframe's parameters; it returns a :class:`Decision` that `farm triggers` shows as it is and the
periodic check (:mod:`trainfarm.workers.triggers`) acts on. The policies so far:

``no_champion``
    the market has no champion yet: retrain until one passes the gates;
``stale``
    the champion is older (by the time its version was built) than the timeframe's ``freshness_limit``.

``live_win_rate`` / ``live_sharpe``
    after at least ``min_outcomes`` live signals of the champion whose realised return is known (ingested
    from the bots, :mod:`trainfarm.workers.outcomes`): the share that made money below ``min_win_rate``
    (45%), or the annualised per-signal Sharpe below ``min_live_sharpe`` (0.3).

A disabled policy (``[timeframes.<tf>.triggers]``) still reports, with ``retrain`` false and "off".
Feature drift and calibration drift need the training distribution in the pack; they will be policies of
the same shape.
"""

from __future__ import annotations

import math
import statistics
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
    #: (bar, realised return) of the champion's live signals whose horizon has passed, oldest first
    live: tuple[tuple[datetime, float], ...] = ()


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


def _not_decidable(
    policy: str, enabled: bool, threshold: float, market: Market, need: int
) -> Decision | None:
    """The decision of a live policy that is off or has too few outcomes yet; None when it may decide."""
    if not enabled:
        return Decision(policy, False, None, threshold, "off")
    if len(market.live) < need:
        return Decision(policy, False, None, threshold, f"{len(market.live)} of {need} outcomes")
    return None


def live_win_rate(market: Market, params: TimeframeParams) -> Decision:
    """Retrain when the share of the champion's live signals that made money is below ``min_win_rate``."""
    tp = params.triggers
    undecided = _not_decidable("live_win_rate", tp.live_win_rate, tp.min_win_rate, market, tp.min_outcomes)
    if undecided is not None:
        return undecided
    n = len(market.live)
    rate = sum(r > 0 for _, r in market.live) / n
    verdict = "below" if rate < tp.min_win_rate else "at or above"
    detail = f"{rate:.1%} of {n} live signals won, {verdict} {tp.min_win_rate:.0%}"
    return Decision("live_win_rate", rate < tp.min_win_rate, rate, tp.min_win_rate, detail)


def live_sharpe(market: Market, params: TimeframeParams) -> Decision:
    """Retrain when the champion's live Sharpe (per signal, annualised by the signals' rate) is too low.

    ``mean / std * sqrt(signals per year)``, the rate taken from the span of the signals' bars (at least
    one timeframe bar). Zero std gives 0 (no evidence of an edge either way).
    """
    tp = params.triggers
    undecided = _not_decidable("live_sharpe", tp.live_sharpe, tp.min_live_sharpe, market, tp.min_outcomes)
    if undecided is not None:
        return undecided
    n = len(market.live)
    returns = [r for _, r in market.live]
    mean = statistics.fmean(returns)
    std = statistics.stdev(returns)
    span = max(market.live[-1][0] - market.live[0][0], market.timeframe.duration)
    per_year = n / (span.total_seconds() / (365.0 * 86400.0))
    sharpe = mean / std * math.sqrt(per_year) if std > 0 else 0.0
    verdict = "below" if sharpe < tp.min_live_sharpe else "at or above"
    detail = f"live Sharpe {sharpe:.2f} over {n} signals, {verdict} {tp.min_live_sharpe:g}"
    return Decision("live_sharpe", sharpe < tp.min_live_sharpe, sharpe, tp.min_live_sharpe, detail)


#: Every policy, in the order `farm triggers` shows them.
POLICIES: tuple[Policy, ...] = (no_champion, stale, live_win_rate, live_sharpe)


def evaluate(market: Market, params: TimeframeParams) -> list[Decision]:
    """Every policy's decision on ``market``."""
    return [policy(market, params) for policy in POLICIES]


__all__ = [
    "POLICIES",
    "Decision",
    "Market",
    "Policy",
    "evaluate",
    "live_sharpe",
    "live_win_rate",
    "no_champion",
    "stale",
]
