"""Fixtures shared by every test: an isolated farm home, the real data beside the repository, Redis.

Also what makes a test ``slow`` (skipped by ``make test-fast``): see :func:`pytest_collection_modifyitems`.
Helpers that test modules share live in plain modules (``tests/services.py``, ``tests/packs.py``, ...),
never here: test modules do not import from conftest files.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pytest
import redis

from tests.services import REPO_ROOT, SAMPLE_DIR, SHARED_DATA, require
from trainfarm.shared.connections import EmbeddedRedis, embedded_redis, redis_client
from trainfarm.shared.settings import FarmSettings, get_settings

if TYPE_CHECKING:
    from tests.packs import Version

#: Every test under these folders is slow: real worker, bot and Redis server processes, built wheels and
#: installed environments.
SLOW_FOLDERS = ("tests/integration", "tests/packaging", "tests/reliability")

#: Fixtures that make every test using them slow, directly or through another fixture. A bare name matches
#: that fixture wherever it is defined; ``path::name`` only the one defined in that file (where the same
#: name is also used for a cheap fixture).
EXPENSIVE_FIXTURES = {
    # Packs: snapshot -> 8 base models -> meta stage.
    "btc_versions": "trains three packs (once per session)",
    "tests/unit/conftest.py::pack": "trains 8 models into the session's pack",
    "tests/unit/client/test_live.py::versions": "trains three packs",
    "tests/unit/client/test_remote_packs.py::remote": "trains three packs, serves them over HTTP",
    "tests/unit/test_gate_properties.py::noise": "trains a pack per random walk",
    "tests/unit/test_gate_properties.py::signal": "trains a pack per planted signal",
    "tests/unit/test_gate_properties.py::unscored": "trains a pack",
    "tests/unit/test_gate_properties_sizes.py::built": "trains packs per random walk and planted signal",
    # Real processes that must run for several schedule slots.
    "tests/reliability/test_beat.py::beat_home": "runs beat processes over second-scale cadences",
    "tests/integration/test_up.py::up": "starts a whole farm (Redis, two workers, beat)",
    "tests/integration/test_unattended_farm.py::farm": "beat, two workers and a bot retraining for real",
    "tests/unit/training/test_base.py::trained": "trains the whole zoo",
    "tests/unit/workers/test_stages.py::run": "runs a whole retrain: 8 models and the meta stage",
    "tests/unit/workers/test_meta_runs.py::meta_farm": "a full run, then a meta-only run on newer bars",
}


def _fixture_keys(item: pytest.Item) -> set[str]:
    """The names of the fixtures ``item`` uses, each also as ``path::name`` of the definition in effect."""
    keys: set[str] = set()
    info = getattr(item, "_fixtureinfo", None)
    for name in getattr(item, "fixturenames", ()):
        keys.add(name)
        defs = info.name2fixturedefs.get(name) if info is not None else None
        if not defs:
            continue
        try:
            where = Path(inspect.getfile(defs[-1].func)).resolve().relative_to(REPO_ROOT)
        except (TypeError, ValueError):
            continue
        keys.add(f"{where.as_posix()}::{name}")
    return keys


def _check_expensive_fixtures() -> None:
    """Every ``path::name`` in EXPENSIVE_FIXTURES still names a fixture there: a moved or renamed one
    would otherwise silently leave its tests in the fast set."""
    for key in EXPENSIVE_FIXTURES:
        path, _, name = key.rpartition("::")
        if path and f"def {name}(" not in _text(REPO_ROOT / path):
            raise pytest.UsageError(f"tests/conftest.py: EXPENSIVE_FIXTURES names {key}, which is gone")


def _text(path: Path) -> str:
    return path.read_text() if path.is_file() else ""


@pytest.hookimpl(tryfirst=True)  # before ``-m "not slow"`` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` what builds packs, starts processes or installs environments (see the tables above);
    single tests elsewhere carry an explicit ``@pytest.mark.slow``."""
    _check_expensive_fixtures()
    for item in items:
        where = item.path.resolve()
        in_slow_folder = any(where.is_relative_to(REPO_ROOT / folder) for folder in SLOW_FOLDERS)
        if in_slow_folder or _fixture_keys(item) & EXPENSIVE_FIXTURES.keys():
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real Binance bars in ../shared/data (skips locally when absent, fails when CI=true)."""
    require(SHARED_DATA.is_dir(), f"real data folder {SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(scope="session")
def sample_dir() -> Path:
    """The compact real sample bundled with the repository (always present)."""
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def btc_versions(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> list[Version]:
    """Three real versions (v1 < v2 < v3) of BTC_USDT 12h on three windows of the sample, built once per
    session (:func:`tests.packs.build_versions`) for every module that only reads packs: no test may
    change them (copy one first, as the tampering tests do)."""
    from tests.packs import build_versions  # the ML libraries load only where packs are built

    bars_5m = pl.read_parquet(sample_dir / "BTC_USDT-5m.parquet")
    return build_versions(tmp_path_factory.mktemp("btc-versions") / "home", bars_5m)


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
