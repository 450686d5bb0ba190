"""Retrain trigger policies: for one market, each says whether to retrain now, with its value and threshold.

A policy is a plain function of a :class:`Market` (what the registry knows of one symbol and timeframe)
and the timeframe's parameters; it returns a :class:`Decision` that `farm triggers` shows as it is and the
periodic check (:mod:`trainfarm.workers.checks.trigger_check`) acts on. The policies stay pure: their
inputs come from :mod:`trainfarm.workers.checks.outcome_ingest` (live outcomes),
:mod:`trainfarm.workers.checks.live_window` (the drift measures of :mod:`trainfarm.shared.monitoring.drift`)
and :mod:`trainfarm.workers.checks.skew`. A disabled policy (``[timeframes.<tf>.triggers]``) still reports,
with ``retrain`` false and "off"; ``train_serve_skew`` is a flag that never retrains.

The policies, their thresholds, the live window and why the drift thresholds sit where they do:
docs/operations.md#triggers.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime

from trainfarm.shared.config import TimeframeParams
from trainfarm.shared.monitoring.drift import SkewReport
from trainfarm.shared.timeframes import Timeframe, format_duration


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
    #: bars of the live window (after the champion's data, complete bars with complete features)
    live_bars: int = 0
    #: per-feature PSI of the live window against the champion's training distribution
    feature_psi: Mapping[str, float] | None = None
    #: bars of the live window whose label horizon has passed (the calibration policy's rows)
    labelled_bars: int = 0
    #: :func:`trainfarm.shared.monitoring.drift.calibration_gap` of the champion on those bars
    calibration_gap: float | None = None
    #: the features bots reported against the farm's recomputation
    skew: SkewReport | None = None
    #: policy -> why its input is missing (an older pack, bars missing from the store, an error)
    unavailable: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Decision:
    """One policy's verdict on one market: ``retrain`` when ``value`` crossed ``threshold``."""

    policy: str
    retrain: bool
    value: float | None
    threshold: float | None
    detail: str
    #: an operator should look although retraining would not help (``train_serve_skew``)
    flagged: bool = False

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
    limit_h = params.freshness_limit.total_seconds() / 3600.0
    if not params.triggers.stale:
        return Decision("stale", False, None, limit_h, "off")
    if market.champion is None or market.champion_built_at is None:
        return Decision("stale", False, None, limit_h, "no champion to age")
    age_h = (market.now - market.champion_built_at).total_seconds() / 3600.0
    verdict = "older than" if age_h > limit_h else "within"
    limit = format_duration(params.freshness_limit)
    detail = f"champion {market.champion} is {age_h:.1f} h old, {verdict} the {limit} limit"
    return Decision("stale", age_h > limit_h, age_h, limit_h, detail)


def live_win_rate_of(live: Sequence[tuple[datetime, float]]) -> float | None:
    """The share of ``live`` (bar, realised return) outcomes that made money; None when there are none."""
    if not live:
        return None
    return sum(r > 0 for _, r in live) / len(live)


def live_sharpe_of(live: Sequence[tuple[datetime, float]], timeframe: Timeframe) -> float | None:
    """The live Sharpe of ``live`` (bar, realised return) outcomes, oldest first: per signal, annualised by
    the signals' rate.

    ``mean / std * sqrt(signals per year)``, the rate taken from the span of the signals' bars (at least
    one ``timeframe`` bar). Zero std gives 0 (no evidence of an edge either way); None with fewer than
    two outcomes (no spread to divide by).
    """
    if len(live) < 2:
        return None
    returns = [r for _, r in live]
    mean = statistics.fmean(returns)
    std = statistics.stdev(returns)
    span = max(live[-1][0] - live[0][0], timeframe.duration)
    per_year = len(live) / (span.total_seconds() / (365.0 * 86400.0))
    return mean / std * math.sqrt(per_year) if std > 0 else 0.0


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
    rate = live_win_rate_of(market.live)
    assert rate is not None  # _not_decidable: at least min_outcomes (>= 2) outcomes
    verdict = "below" if rate < tp.min_win_rate else "at or above"
    detail = f"{rate:.1%} of {n} live signals won, {verdict} {tp.min_win_rate:.0%}"
    return Decision("live_win_rate", rate < tp.min_win_rate, rate, tp.min_win_rate, detail)


def live_sharpe(market: Market, params: TimeframeParams) -> Decision:
    """Retrain when the champion's live Sharpe (:func:`live_sharpe_of`) is below ``min_live_sharpe``."""
    tp = params.triggers
    undecided = _not_decidable("live_sharpe", tp.live_sharpe, tp.min_live_sharpe, market, tp.min_outcomes)
    if undecided is not None:
        return undecided
    n = len(market.live)
    sharpe = live_sharpe_of(market.live, market.timeframe)
    assert sharpe is not None  # _not_decidable: at least min_outcomes (>= 2) outcomes
    verdict = "below" if sharpe < tp.min_live_sharpe else "at or above"
    detail = f"live Sharpe {sharpe:.2f} over {n} signals, {verdict} {tp.min_live_sharpe:g}"
    return Decision("live_sharpe", sharpe < tp.min_live_sharpe, sharpe, tp.min_live_sharpe, detail)


def _no_drift_input(policy: str, enabled: bool, threshold: float, market: Market) -> Decision | None:
    """The decision of a drift policy that is off or lacks its input; None when it may decide."""
    if not enabled:
        return Decision(policy, False, None, threshold, "off")
    if market.champion is None:
        return Decision(policy, False, None, threshold, "no champion to compare")
    if policy in market.unavailable:
        return Decision(policy, False, None, threshold, market.unavailable[policy])
    return None


def feature_drift(market: Market, params: TimeframeParams) -> Decision:
    """Retrain when the live window's largest per-feature PSI exceeds ``max_feature_psi``."""
    tp = params.triggers
    undecided = _no_drift_input("feature_drift", tp.feature_drift, tp.max_feature_psi, market)
    if undecided is not None:
        return undecided
    if market.live_bars < tp.min_live_bars or not market.feature_psi:
        detail = f"{market.live_bars} of {tp.min_live_bars} live bars"
        return Decision("feature_drift", False, None, tp.max_feature_psi, detail)
    name, value = max(market.feature_psi.items(), key=lambda item: item[1])
    verdict = "above" if value > tp.max_feature_psi else "at or below"
    detail = f"{name} PSI {value:.3f} over {market.live_bars} live bars, {verdict} {tp.max_feature_psi:g}"
    return Decision("feature_drift", value > tp.max_feature_psi, value, tp.max_feature_psi, detail)


def calibration_drift(market: Market, params: TimeframeParams) -> Decision:
    """Retrain when the champion's live calibration gap exceeds ``max_calibration_gap``."""
    tp = params.triggers
    threshold = tp.max_calibration_gap
    undecided = _no_drift_input("calibration_drift", tp.calibration_drift, threshold, market)
    if undecided is not None:
        return undecided
    n = market.labelled_bars
    if n < tp.min_live_bars or market.calibration_gap is None:
        return Decision(
            "calibration_drift", False, None, threshold, f"{n} of {tp.min_live_bars} live bars with a label"
        )
    gap = market.calibration_gap
    verdict = "above" if gap > threshold else "at or below"
    detail = f"predicted vs realised frequency differ by {gap:.3f} on {n} live bars, {verdict} {threshold:g}"
    return Decision("calibration_drift", gap > threshold, gap, threshold, detail)


def train_serve_skew(market: Market, params: TimeframeParams) -> Decision:
    """Flag (never retrain) when features bots reported differ from the farm's for the same bars."""
    if not params.triggers.train_serve_skew:
        return Decision("train_serve_skew", False, None, 0.0, "off")
    if market.champion is None:
        return Decision("train_serve_skew", False, None, 0.0, "no champion")
    if "train_serve_skew" in market.unavailable:
        return Decision("train_serve_skew", False, None, 0.0, market.unavailable["train_serve_skew"])
    skew = market.skew
    if skew is None or skew.checked + skew.not_checked == 0:
        return Decision("train_serve_skew", False, None, 0.0, "no live features reported yet")
    unchecked = f"; {skew.not_checked} not checked (bar missing from the store)" if skew.not_checked else ""
    if skew.checked == 0:
        return Decision("train_serve_skew", False, None, 0.0, f"none checked{unchecked}")
    share = skew.mismatch_share
    if not skew.mismatched:
        return Decision("train_serve_skew", False, share, 0.0, f"{skew.checked} rows match{unchecked}")
    worst = ""
    if skew.worst_feature is not None and skew.worst_bar is not None:
        at = skew.worst_bar.isoformat()
        worst = f"; worst {skew.worst_feature} at {at} (|diff| {skew.worst_difference:.3g})"
    elif skew.problems:
        worst = f"; {skew.problems[0]}"
    detail = (
        f"SKEW: {skew.mismatched} of {skew.checked} reported rows differ from the farm's features{worst}"
        f"{unchecked}; retraining does not fix it"
    )
    return Decision("train_serve_skew", False, share, 0.0, detail, flagged=True)


#: Every policy, in the order `farm triggers` shows them.
POLICIES: tuple[Policy, ...] = (
    no_champion,
    stale,
    live_win_rate,
    live_sharpe,
    feature_drift,
    calibration_drift,
    train_serve_skew,
)


def evaluate(market: Market, params: TimeframeParams) -> list[Decision]:
    """Every policy's decision on ``market``."""
    return [policy(market, params) for policy in POLICIES]


__all__ = [
    "POLICIES",
    "Decision",
    "Market",
    "Policy",
    "calibration_drift",
    "evaluate",
    "feature_drift",
    "live_sharpe",
    "live_sharpe_of",
    "live_win_rate",
    "live_win_rate_of",
    "no_champion",
    "stale",
    "train_serve_skew",
]
