"""`farm status`'s report on a real registry and a real (embedded) Redis: flags say what is wrong."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis

from tests.support.markets import crown, two_markets
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.registry import Registry
from trainfarm.workers.status import STALE_BOT_S, farm_status
from trainfarm_client.contract import bot_key


@pytest.fixture
def markets(tmp_path: Path) -> Iterator[tuple[Registry, FarmConfig, redis.Redis]]:
    with two_markets(tmp_path / "home") as markets:
        yield markets


def test_status_flags_stale_champions_and_stale_or_lagging_bots(
    markets: tuple[Registry, FarmConfig, redis.Redis],
) -> None:
    registry, config, client = markets
    champion = crown(registry, "BTC_USDT")
    running, _ = registry.runs.claim("ETH_USDT", "1h", "schedule")
    registry.runs.claim("ETH_USDT", "1h", "trigger:no_champion")
    client.lpush("cpu", b"{}", b"{}")
    built = registry.champions.get("BTC_USDT", "1h").created_at  # type: ignore[union-attr]
    now = built + timedelta(days=4)  # 1h champions go stale after 3 days
    client.hset(
        bot_key("fresh-but-old-version"),
        mapping={"symbol": "BTC_USDT", "timeframe": "1h", "version": "v0", "seen_at": now.isoformat()},
    )
    client.hset(
        bot_key("silent"),
        mapping={
            "symbol": "BTC_USDT",
            "timeframe": "1h",
            "version": champion,
            "seen_at": (now - timedelta(seconds=STALE_BOT_S + 5)).isoformat(),
            "last_error": "pack download failed",
        },
    )
    report = farm_status(
        registry,
        config,
        client,
        active_queues={"w1@host": [{"name": "cpu"}, {"name": "meta"}]},
        stats={"w1@host": {"pool": {"max-concurrency": 2}}},
        now=now,
    )
    assert [(w.name, w.queues, w.concurrency) for w in report.workers] == [("w1@host", ["cpu", "meta"], 2)]
    assert report.queues["cpu"] == 2 and report.queues["gpu"] == 0
    reasons = ["schedule", "trigger:no_champion"]
    assert [(r["id"], r["reasons"]) for r in report.runs] == [(running.id, reasons)]
    markets = {m.symbol: m for m in report.markets}
    assert markets["BTC_USDT"].champion == champion and markets["BTC_USDT"].stale
    assert markets["BTC_USDT"].age_h == pytest.approx(96.0)
    assert markets["ETH_USDT"].champion is None and not markets["ETH_USDT"].stale
    bots = {b.bot_id: b.flags for b in report.bots}
    assert bots == {"fresh-but-old-version": ["lagging"], "silent": ["stale", "error"]}
    # Lag: how long the champion has waited for the bot (since its promotion); 0 for a bot serving it.
    promoted = registry.champions.history("BTC_USDT", "1h")[0].at
    lags = {b.bot_id: b.lag_s for b in report.bots}
    assert lags == {"fresh-but-old-version": pytest.approx((now - promoted).total_seconds()), "silent": 0.0}
    assert set(report.to_json()) == {"workers", "queues", "runs", "markets", "bots"}


def test_status_of_an_empty_farm(markets: tuple[Registry, FarmConfig, redis.Redis]) -> None:
    registry, config, client = markets
    report = farm_status(registry, config, client, now=datetime.now(UTC))
    assert report.workers == [] and report.runs == [] and report.bots == []
    assert len(report.markets) == 2 and all(m.champion is None for m in report.markets)
