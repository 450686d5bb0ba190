"""Two markets on a real registry and a real (embedded) Redis, for the farm's status and trigger tests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from tests.support.packs import farm_settings
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.connections import embedded_redis, redis_client
from trainfarm.shared.registry import Registry

MARKETS_CONFIG = """
[universe]
symbols = ["BTC_USDT", "ETH_USDT"]
timeframes = ["1h"]
"""


@contextmanager
def two_markets(home: Path) -> Iterator[tuple[Registry, FarmConfig, redis.Redis]]:
    """BTC_USDT and ETH_USDT at 1h in ``home``: the registry, the config and a Redis client, all closed."""
    with farm_settings(home, MARKETS_CONFIG) as settings:
        client = redis_client(settings)
        try:
            yield Registry.open(), settings.load_config(), client
        finally:
            client.close()
            embedded_redis(settings).stop()


def crown(registry: Registry, symbol: str, timeframe: str = "1h") -> str:
    """Make a version ``v-<symbol>`` the market's champion through a run that then ends; returns its id."""
    run = registry.runs.create(symbol, timeframe, "cli")
    version = f"v-{symbol}"
    registry.versions.add(
        version, symbol, timeframe, run.id, metrics={}, path=f"/p/{symbol}", manifest_sha256="0" * 64
    )
    registry.champions.promote(version, reason="gate")
    registry.runs.fail(run.id, "done here")  # frees the market for the next run
    return version
