"""Fixtures for the unit tests: one real artifact pack, built once per session and shared.

The pack goes through the same steps as a run (snapshot -> 8 base models -> meta stage) with a small
config on the bundled BTC sample at 12h; no Redis or registry is involved. The farm's predictor tests
(``test_predictor.py``) and the bot client's tests (``client/``) load it; none of them may change it
(``copied`` in those modules gives a test its own copy to damage).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from trainfarm.shared.data.resample import resample
from trainfarm.shared.dataset import DatasetSnapshot, build_snapshot
from trainfarm.shared.settings import get_settings
from trainfarm.shared.timeframes import Timeframe
from trainfarm.shared.training.meta_stage import BuiltVersion, build_version
from tests.packs import train_base_models

PACK_SYMBOL, PACK_TF = "BTC_USDT", Timeframe.H12
SMALL_CONFIG = """
[training]
base_rounds = 12
meta_rounds = 40
early_stopping_rounds = 5
task_time_limit = "5m"
"""


@dataclass(frozen=True)
class Pack:
    path: Path
    manifest_sha256: str
    snapshot: DatasetSnapshot
    bars: pl.DataFrame  #: the sample resampled to 12h: the raw bars a bot would have


@pytest.fixture(scope="session")
def pack(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Pack:
    """A complete pack written by the meta stage (session-wide: training 8 models takes a while)."""
    home = tmp_path_factory.mktemp("predictor") / "home"
    home.mkdir()
    config_file = home / "farm.toml"
    config_file.write_text(SMALL_CONFIG)
    # The FARM_* variables point into this home only while the pack is built: the fixture lives for the
    # whole session, and no other test may see them.
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("FARM_"):
                mp.delenv(key)
        mp.setenv("FARM_HOME", str(home))
        mp.setenv("FARM_CONFIG_FILE", str(config_file))
        get_settings.cache_clear()
        try:
            built, snapshot, bars_5m = _build(home, sample_dir)
        finally:
            get_settings.cache_clear()
    return Pack(built.path, built.manifest_sha256, snapshot, resample(bars_5m, PACK_TF))


def _build(home: Path, sample_dir: Path) -> tuple[BuiltVersion, DatasetSnapshot, pl.DataFrame]:
    settings = get_settings()
    config = settings.load_config()
    bars_5m = pl.read_parquet(sample_dir / "BTC_USDT-5m.parquet")
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
    return built, snapshot, bars_5m


@pytest.fixture
def copied(pack: Pack, tmp_path: Path) -> Path:
    """A copy of the pack that a test may damage."""
    target = tmp_path / "pack"
    shutil.copytree(pack.path, target)
    return target
