"""The trigger check on a real registry and a real (embedded) Redis: fire once per cooldown, merge, retry.

The submit function is the real claim (:func:`trainfarm.workers.runs.claim_run`): runs are recorded in
the registry as a retrain would; no broker is needed to see what fired.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from tests.support.markets import crown, two_markets
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.registry import Registry, Signal
from trainfarm.workers.checks.trigger_check import COOLDOWN_KEY, check, report
from trainfarm.workers.runs import Submitted, claim_run

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)


@pytest.fixture
def markets(tmp_path: Path) -> Iterator[tuple[Registry, FarmConfig, redis.Redis]]:
    with two_markets(tmp_path / "home") as markets:
        yield markets


def _claim(symbol: str, timeframe: str, reason: str) -> Submitted:
    return claim_run(symbol, timeframe, reason)


def test_a_market_without_a_champion_is_retrained_once_per_cooldown(
    markets: tuple[Registry, FarmConfig, redis.Redis],
) -> None:
    registry, config, client = markets
    fired = check(registry, config, client, _claim, NOW)
    assert sorted((f.symbol, f.policy, f.merged) for f in fired) == [
        ("BTC_USDT", "no_champion", False),
        ("ETH_USDT", "no_champion", False),
    ]
    assert registry.runs.active("BTC_USDT", "1h").reasons == ["trigger:no_champion"]  # type: ignore[union-attr]
    # Within the cooldown the same policy stays quiet, and `farm triggers` says how long it waits.
    assert check(registry, config, client, _claim, NOW) == []
    waits = {r.symbol: r.cooldown_s["no_champion"] for r in report(registry, config, client, NOW)}
    assert 0 < waits["BTC_USDT"] <= 3600
    # After it (the key expired), the policy fires again and merges into the run still under way.
    client.delete(COOLDOWN_KEY.format(symbol="BTC_USDT", timeframe="1h", policy="no_champion"))
    again = check(registry, config, client, _claim, NOW)
    assert [(f.symbol, f.merged) for f in again] == [("BTC_USDT", True)]
    assert len(registry.runs.newest("BTC_USDT", "1h")) == 1


def test_a_failed_submit_clears_the_cooldown_so_the_next_check_retries(
    markets: tuple[Registry, FarmConfig, redis.Redis],
) -> None:
    registry, config, client = markets

    def broker_down(symbol: str, timeframe: str, reason: str) -> Submitted:
        raise ConnectionError("broker unreachable")

    with pytest.raises(ConnectionError):
        check(registry, config, client, broker_down, NOW)
    assert client.keys("farm:triggers:cooldown:*") == []
    assert len(check(registry, config, client, _claim, NOW)) == 2


def test_a_stale_champion_is_retrained(markets: tuple[Registry, FarmConfig, redis.Redis]) -> None:
    registry, config, client = markets
    for symbol in ("BTC_USDT", "ETH_USDT"):
        crown(registry, symbol)
    built = registry.champions.get("BTC_USDT", "1h").created_at  # type: ignore[union-attr]
    limit = config.params(config.universe.timeframes[0]).freshness_limit
    assert check(registry, config, client, _claim, built + limit - timedelta(minutes=1)) == []
    fired = check(registry, config, client, _claim, built + limit + timedelta(minutes=1))
    assert sorted((f.symbol, f.policy) for f in fired) == [("BTC_USDT", "stale"), ("ETH_USDT", "stale")]


def test_losing_live_outcomes_trigger_a_retrain(markets: tuple[Registry, FarmConfig, redis.Redis]) -> None:
    """Outcomes ingested from the bots feed the live policies of the champion that produced them."""
    registry, config, client = markets
    for symbol in ("BTC_USDT", "ETH_USDT"):
        crown(registry, symbol)
    built = registry.champions.get("BTC_USDT", "1h").created_at  # type: ignore[union-attr]
    signals = [
        Signal(
            "bot",
            "BTC_USDT",
            "1h",
            "v-BTC_USDT",
            built + timedelta(hours=h),
            "up",
            0.6,
            0.01 if h < 8 else -0.01,
        )
        for h in range(20)
    ]  # 8 of 20 won
    assert registry.outcomes.record(signals).inserted == 20
    fired = check(registry, config, client, _claim, built + timedelta(hours=21))
    assert sorted((f.symbol, f.policy) for f in fired) == [
        ("BTC_USDT", "live_sharpe"),
        ("BTC_USDT", "live_win_rate"),
    ]
    run = registry.runs.active("BTC_USDT", "1h")
    assert run is not None and run.reasons == ["trigger:live_win_rate", "trigger:live_sharpe"]
