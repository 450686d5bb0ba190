"""Trigger policies on hand-built markets: each decides with its value and threshold, or reports "off"."""

from __future__ import annotations

import math
import statistics
from datetime import UTC, datetime, timedelta

import pytest

from trainfarm.shared.config import FarmConfig
from trainfarm.shared.monitoring.policies import (
    Market,
    evaluate,
    live_sharpe,
    live_win_rate,
    no_champion,
    stale,
)
from trainfarm.shared.timeframes import Timeframe

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
PARAMS = FarmConfig().params(Timeframe.H1)  # freshness limit 3 days


def _market(age: timedelta | None) -> Market:
    if age is None:
        return Market("BTC_USDT", Timeframe.H1, NOW)
    return Market("BTC_USDT", Timeframe.H1, NOW, champion="v1", champion_built_at=NOW - age)


def test_no_champion_fires_until_there_is_one() -> None:
    assert no_champion(_market(None), PARAMS).retrain
    assert not no_champion(_market(timedelta(hours=1)), PARAMS).retrain
    off = PARAMS.model_copy(update={"triggers": PARAMS.triggers.model_copy(update={"no_champion": False})})
    decision = no_champion(_market(None), off)
    assert not decision.retrain and decision.detail == "off"


def test_stale_compares_the_champions_age_with_the_freshness_limit() -> None:
    fresh = stale(_market(timedelta(days=2)), PARAMS)
    assert not fresh.retrain and fresh.value == 48.0 and fresh.threshold == 72.0
    old = stale(_market(timedelta(days=3, hours=1)), PARAMS)
    assert old.retrain and old.value == 73.0 and "older than the 3d limit" in old.detail
    assert not stale(_market(None), PARAMS).retrain  # nothing to age: no_champion covers it


def test_every_policy_reports_on_every_market() -> None:
    decisions = evaluate(_market(None), PARAMS)
    assert [d.policy for d in decisions] == [
        "no_champion",
        "stale",
        "live_win_rate",
        "live_sharpe",
        "feature_drift",
        "calibration_drift",
        "train_serve_skew",
    ]
    assert [d.retrain for d in decisions] == [True] + [False] * 6
    assert set(decisions[0].to_json()) == {"policy", "retrain", "value", "threshold", "detail", "flagged"}


def _live(returns: list[float], hours: int = 1) -> Market:
    bars = [NOW - timedelta(hours=hours * (len(returns) - i)) for i in range(len(returns))]
    return Market(
        "BTC_USDT",
        Timeframe.H1,
        NOW,
        champion="v1",
        champion_built_at=NOW - timedelta(days=1),
        live=tuple(zip(bars, returns, strict=True)),
    )


def test_live_win_rate_needs_enough_outcomes_then_compares() -> None:
    few = live_win_rate(_live([-0.01] * 19), PARAMS)
    assert not few.retrain and few.detail == "19 of 20 outcomes"
    losing = live_win_rate(_live([0.01] * 8 + [-0.01] * 12), PARAMS)  # 40% won
    assert losing.retrain and losing.value == 0.4 and losing.threshold == 0.45
    winning = live_win_rate(_live([0.01] * 10 + [-0.01] * 10), PARAMS)  # 50%
    assert not winning.retrain


def test_live_sharpe_is_annualised_by_the_signal_rate() -> None:
    returns = [0.01, -0.005] * 10  # mean 0.0025, sample std ~0.0077
    decision = live_sharpe(_live(returns), PARAMS)
    per_year = 20 / (19 / (365 * 24))  # 20 signals over 19 hours
    expected = statistics.fmean(returns) / statistics.stdev(returns) * math.sqrt(per_year)
    assert decision.value == pytest.approx(expected) and not decision.retrain
    assert live_sharpe(_live([-r for r in returns]), PARAMS).retrain
    assert live_sharpe(_live([0.01] * 20), PARAMS).value == 0.0  # no spread: no evidence either way
