"""Fixtures of the checks' tests: a farm home's registry and its embedded Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.packs import farm_settings
from trainfarm.shared.connections import embedded_redis, redis_client
from trainfarm.shared.registry import Registry


@pytest.fixture
def registry_and_redis(tmp_path: Path) -> Iterator[tuple[Registry, redis.Redis]]:
    """A fresh home's registry and a client of its embedded Redis (stopped afterwards)."""
    with farm_settings(tmp_path / "home") as settings:
        client = redis_client(settings)
        try:
            yield Registry.open(), client
        finally:
            client.close()
            embedded_redis(settings).stop()
