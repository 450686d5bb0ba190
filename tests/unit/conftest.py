"""Fixtures for the unit tests: one real artifact pack, built once per session and shared; the settings'
registry and small packs registered in it (``registry``, ``make_version``: promotion and reconciliation).

The pack goes through the same steps as a run (snapshot -> 8 base models -> meta stage) with a small
config on the bundled BTC sample at 12h; no Redis or registry is involved. The farm's predictor tests
(``test_predictor.py``) and the bot client's tests (``client/``) load it; none of them may change it
(``copied`` gives a test its own copy to damage). Building it is slow: every test that uses it is marked
``slow`` (``EXPENSIVE_FIXTURES`` in ``tests/conftest.py``).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from tests.clock import StepClock
from tests.packs import PACK_SYMBOL, PACK_TF, Pack, farm_settings, train_base_models
from trainfarm.shared.artifacts import pack_dir, write_pack
from trainfarm.shared.data.resample import resample
from trainfarm.shared.dataset import build_snapshot
from trainfarm.shared.registry import Registry, dispose_engine
from trainfarm.shared.settings import FarmSettings
from trainfarm.shared.training.meta_stage import build_version


@pytest.fixture(scope="session")
def pack(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Pack:
    """A complete pack written by the meta stage (session-wide: training 8 models takes a while)."""
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
    """A copy of the pack that a test may damage."""
    target = tmp_path / "pack"
    shutil.copytree(pack.path, target)
    return target


@pytest.fixture
def registry(settings: FarmSettings) -> Iterator[Registry]:
    """The settings' registry (SQLite under the farm home), with a clock stepping one second per read."""
    with Registry.open(settings.database, clock=StepClock()) as reg:
        yield reg
    dispose_engine(settings.database)


@pytest.fixture
def make_version(registry: Registry, settings: FarmSettings) -> Callable[..., str]:
    """Write a small real pack and register it as a candidate; ids ``v01``, ``v02``, ... (oldest first)."""
    count = 0

    def make(symbol: str = "BTC_USDT", timeframe: str = "1h") -> str:
        nonlocal count
        count += 1
        vid = f"v{count:02d}"
        manifest = {"version": vid, "symbol": symbol, "timeframe": timeframe, "p_star": 0.4}
        files: dict[str, Path | bytes] = {
            "meta/meta.txt": f"model {vid}\n".encode(),
            "calibrator.json": b"{}",
        }
        pack = write_pack(pack_dir(settings.artifacts_dir, symbol, timeframe, vid), files, manifest)
        run = registry.create_run(symbol, timeframe, "test").id
        registry.add_version(
            vid, symbol, timeframe, run, metrics={}, path=str(pack.path), manifest_sha256=pack.manifest_sha256
        )
        return vid

    return make
