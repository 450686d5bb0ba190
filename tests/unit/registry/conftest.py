"""Registry fixtures: one database per test, SQLite (a file) and PostgreSQL (a fresh database).

The PostgreSQL case runs on the server at 127.0.0.1:5432 (user ``postgres``) when it accepts connections
and psycopg is installed; otherwise it is skipped, except under CI=true, where it fails.
"""

from __future__ import annotations

import importlib.util
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.clock import StepClock
from tests.services import PG_HOST, PG_PORT, PG_USER, require, tcp_port_open
from trainfarm.shared.registry import Registry, dispose_engine


def _postgres_database() -> Iterator[str]:
    require(tcp_port_open(PG_HOST, PG_PORT), f"no PostgreSQL at {PG_HOST}:{PG_PORT}")
    require(importlib.util.find_spec("psycopg") is not None, "psycopg is not installed")
    import psycopg

    name = f"trainfarm_test_{secrets.token_hex(6)}"
    admin = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    try:
        yield url
    finally:
        dispose_engine(url)
        with psycopg.connect(admin, autocommit=True) as conn:
            # FORCE: a test that failed half-way may leave a connection open; the database must still go.
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty registry database (not migrated yet), on each backend."""
    if request.param == "postgresql":
        yield from _postgres_database()
        return
    url = f"sqlite:///{tmp_path / 'db' / 'registry.sqlite3'}"
    yield url
    dispose_engine(url)


@pytest.fixture
def clock() -> StepClock:
    return StepClock()


@pytest.fixture
def registry(db_url: str, clock: StepClock) -> Iterator[Registry]:
    """A migrated registry on ``db_url`` whose clock steps one second per reading."""
    with Registry.open(db_url, clock=clock) as reg:
        yield reg


@pytest.fixture
def new_run(registry: Registry) -> Callable[..., str]:
    """Create a BTC_USDT 1h run (or another market) and return its id."""

    def make(symbol: str = "BTC_USDT", timeframe: str = "1h", reason: str = "forced") -> str:
        return registry.create_run(symbol, timeframe, reason).id

    return make
