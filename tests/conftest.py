"""Fixtures shared by every test: an isolated farm home, the real data beside the repository, Redis."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from trainfarm.shared.connections import EmbeddedRedis, embedded_redis, redis_client
from trainfarm.shared.settings import FarmSettings, get_settings

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = REPO_ROOT / "data" / "sample"
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

#: CI must not skip what it could not find: a missing service or data folder there is a failure.
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def require(condition: bool, reason: str) -> None:
    """Skip locally when ``condition`` is false, but fail under CI, where the thing must exist."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this must be available in CI)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real Binance bars in ../shared/data (skips locally when absent, fails when CI=true)."""
    require(SHARED_DATA.is_dir(), f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The compact real sample bundled with the repository (always present)."""
    return SAMPLE_DIR


@pytest.fixture
def farm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty farm home; FARM_* variables point every setting into it for this test only."""
    home = tmp_path / "home"
    for key in list(os.environ):
        if key.startswith("FARM_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("FARM_HOME", str(home))
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture
def settings(farm_home: Path) -> FarmSettings:
    """Settings of the isolated farm home."""
    return get_settings()


@pytest.fixture
def server(settings: FarmSettings) -> Iterator[EmbeddedRedis]:
    """The test home's embedded Redis, running (the one the CLI and the library find), always stopped."""
    srv = embedded_redis(settings)
    srv.ensure_running()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def rds(server: EmbeddedRedis, settings: FarmSettings) -> Iterator[redis.Redis]:
    """A client of :func:`server`, closed afterwards."""
    client = redis_client(settings)
    try:
        yield client
    finally:
        client.close()


def tcp_port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
