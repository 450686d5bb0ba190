"""Trigger policies on hand-built markets: each decides with its value and threshold, or reports "off"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from trainfarm.shared.config import FarmConfig
from trainfarm.shared.timeframes import Timeframe
from trainfarm.shared.triggers import Market, evaluate, no_champion, stale

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
    assert [d.policy for d in decisions] == ["no_champion", "stale"]
    assert [d.retrain for d in decisions] == [True, False]
    assert set(decisions[0].to_json()) == {"policy", "retrain", "value", "threshold", "detail"}
