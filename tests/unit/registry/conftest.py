"""Registry fixtures: one database per test, SQLite (a file) and PostgreSQL (a fresh database).

The PostgreSQL case runs on the server at 127.0.0.1:5432 (user ``postgres``) when it accepts connections
and psycopg is installed; otherwise it is skipped, except under CI=true, where it fails.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.clock import StepClock
from tests.support.services import postgres_database
from trainfarm.shared.registry import Registry, dispose_engine


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of an empty registry database (not migrated yet), on each backend."""
    if request.param == "postgresql":
        yield from postgres_database()
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
        return registry.runs.create(symbol, timeframe, reason).id

    return make
