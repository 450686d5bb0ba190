"""Fixtures shared by every test: an isolated farm home, the real data beside the repository, Redis.

Also what makes a test ``slow`` (skipped by ``make test-fast``): its folder (SLOW_FOLDERS), or its own
``@pytest.mark.slow``. Helpers that test modules share live in the package ``tests/support``, never here:
test modules do not import from conftest files.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl
import pytest
import redis

from tests.support.services import REPO_ROOT, SAMPLE_DIR, SHARED_DATA, require
from trainfarm.shared.connections import EmbeddedRedis, embedded_redis, redis_client
from trainfarm.shared.settings import FarmSettings, get_settings

if TYPE_CHECKING:
    from tests.support.packs import Pack, Version

#: Every test under these folders is slow: they train packs, start worker, beat, bot, server and browser
#: processes, or build wheels and install environments. A cheap folder (tests/unit, tests/bench) holds only
#: cheap tests, except the few marked ``@pytest.mark.slow`` one by one, each with its reason.
SLOW_FOLDERS = ("tests/integration", "tests/packaging", "tests/reliability")


@pytest.hookimpl(tryfirst=True)  # before ``-m "not slow"`` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``slow`` every test placed in one of SLOW_FOLDERS."""
    slow = [REPO_ROOT / folder for folder in SLOW_FOLDERS]
    for item in items:
        if any(item.path.resolve().is_relative_to(folder) for folder in slow):
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
    session (:func:`tests.support.packs.build_versions`) for every module that only reads packs: no test may
    change them (copy one first, as the tampering tests do)."""
    from tests.support.packs import build_versions  # the ML libraries load only where packs are built

    bars_5m = pl.read_parquet(sample_dir / "BTC_USDT-5m.parquet")
    return build_versions(tmp_path_factory.mktemp("btc-versions") / "home", bars_5m)


@pytest.fixture(scope="session")
def pack(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Pack:
    """A complete pack of BTC_USDT 12h on the bundled sample, written by the meta stage, built once per
    session (snapshot -> 8 base models -> meta stage, small config; no Redis or registry) for every test
    that only reads it: none may change it (``copied`` gives a test its own copy to damage)."""
    from tests.support.packs import PACK_SYMBOL, PACK_TF, Pack, farm_settings, train_base_models
    from trainfarm.shared.data.resample import resample
    from trainfarm.shared.dataset.snapshot import build_snapshot
    from trainfarm.shared.training.meta_stage import build_version

    home = tmp_path_factory.mktemp("predictor") / "home"
    bars_5m = pl.read_parquet(sample_dir / "BTC_USDT-5m.parquet")
    with farm_settings(home) as settings:
        config = settings.load_config()
        snapshot = build_snapshot(
            bars_5m, symbol=PACK_SYMBOL, timeframe=PACK_TF, config=config, root=settings.datasets_dir
        )
        work_dir = home / "run"
        stage, results = train_base_models(snapshot, work_dir, config, symbol=PACK_SYMBOL, timeframe=PACK_TF)
        created = datetime.now(UTC)
        built = build_version(stage, snapshot, results, work_dir, threads=1, run_created_at=created)
        # A redelivered meta stage finds the run's pack and reuses it: no orphan second pack.
        again = build_version(stage, snapshot, results, work_dir, threads=1, run_created_at=created)
    assert (again.path, again.manifest_sha256) == (built.path, built.manifest_sha256)
    assert [p.name for p in built.path.parent.iterdir()] == [built.path.name]
    return Pack(built.path, built.manifest_sha256, snapshot, resample(bars_5m, PACK_TF))


@pytest.fixture
def copied(pack: Pack, tmp_path: Path) -> Path:
    """A copy of the session's pack that a test may damage."""
    target = tmp_path / "pack"
    shutil.copytree(pack.path, target)
    return target


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
