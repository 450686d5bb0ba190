"""Building real packs in-process (no Celery), for the fixtures that need them.

A plain helper module (neither a test module nor a conftest): the pack fixtures in the conftest files and
the test modules import from it. Everything here trains the 8 base models, so the tests that use it are
slow: they live in tests/integration, or carry ``@pytest.mark.slow`` (see ``tests/conftest.py``).
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from trainfarm.shared.config import FarmConfig
from trainfarm.shared.dataset.snapshot import DatasetSnapshot, build_snapshot
from trainfarm.shared.packs.artifacts import read_manifest
from trainfarm.shared.registry import Registry
from trainfarm.shared.settings import FarmSettings, get_settings
from trainfarm.shared.timeframes import Timeframe
from trainfarm.shared.training.base import BaseModelResult, train_base_model
from trainfarm.shared.training.meta_stage import build_version
from trainfarm.shared.zoo import MODEL_NAMES
from trainfarm.workers.payloads import SnapshotRef, StageJob

#: The market of every pack built from the bundled sample.
PACK_SYMBOL, PACK_TF = "BTC_USDT", Timeframe.H12
#: Small models: the packs are for checking plumbing and contracts, not model quality.
SMALL_CONFIG = """
[training]
base_rounds = 12
meta_rounds = 40
early_stopping_rounds = 5
task_time_limit = "5m"
"""
#: Days of the sample left out at the end of each version's training window: three different models.
WINDOWS_DROPPED_DAYS = (60, 30, 0)
#: Version ids sort by their run's creation time (one hour apart), so v1 < v2 < v3 as the farm's ids do.
FIRST_VERSION_AT = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Pack:
    """The session's pack (``pack`` in ``tests/conftest.py``)."""

    path: Path
    manifest_sha256: str
    snapshot: DatasetSnapshot
    bars: pl.DataFrame  #: the sample resampled to 12h: the raw bars a bot would have


@dataclass(frozen=True)
class Version:
    """One built version of PACK_SYMBOL/PACK_TF: its id, pack folder and manifest sha256."""

    version: str
    path: Path
    manifest_sha256: str


@contextmanager
def farm_settings(home: Path, config: str = SMALL_CONFIG) -> Iterator[FarmSettings]:
    """Settings of ``home`` with ``config`` as its farm.toml, while the block runs.

    The FARM_* variables point into ``home`` only inside the block: fixtures that build packs live for
    a module or the whole session, and no other test may see them.
    """
    home.mkdir(parents=True, exist_ok=True)
    config_file = home / "farm.toml"
    config_file.write_text(config)
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("FARM_"):
                mp.delenv(key)
        mp.setenv("FARM_HOME", str(home))
        mp.setenv("FARM_CONFIG_FILE", str(config_file))
        get_settings.cache_clear()
        try:
            yield get_settings()
        finally:
            get_settings.cache_clear()


#: Processes that train base models for the in-process builds, one thread each as a 2-core worker's pool
#: would; started on first use (spawned: the ML libraries load there, not in the tests' process).
POOL_PROCESSES = 2


@functools.cache
def _pool() -> ProcessPoolExecutor:
    # concurrent.futures joins the pool's processes when the interpreter exits.
    return ProcessPoolExecutor(POOL_PROCESSES, mp_context=multiprocessing.get_context("spawn"))


def train_base_models(
    snapshot: DatasetSnapshot, work_dir: Path, config: FarmConfig, *, symbol: str, timeframe: Timeframe
) -> tuple[StageJob, dict[str, BaseModelResult]]:
    """The stage job of a fresh run over ``snapshot`` and its 8 trained base models.

    Each model trains with one thread in one of :data:`POOL_PROCESSES` processes, as the farm's workers
    train them side by side: the same results as one after another, in about half the time.
    """
    run_id = uuid.uuid4().hex
    futures = {
        m: _pool().submit(
            train_base_model,
            snapshot,
            m,
            work_dir,
            run_id=run_id,
            training=config.training,
            splits=config.splits,
            threads=1,
            device="cpu",
        )
        for m in MODEL_NAMES
    }
    results = {m: future.result() for m, future in futures.items()}
    ref = SnapshotRef.of(
        Path(snapshot.path).with_suffix(".json"),
        get_settings().artifacts_dir,  # the snapshot lies under it, as prepare() builds it
        file_sha256=snapshot.file_sha256,
        content_hash=snapshot.content_hash,
    )
    stage = StageJob(
        run_id=run_id,
        symbol=symbol,
        timeframe=timeframe.value,
        snapshot=ref,
        config_hash=config.config_hash(),
    )
    return stage, results


def build_versions(
    home: Path, bars_5m: pl.DataFrame, dropped_days: Sequence[int] = WINDOWS_DROPPED_DAYS
) -> list[Version]:
    """One real pack of PACK_SYMBOL/PACK_TF per training window (snapshot -> 8 base models -> meta stage),
    oldest id first; the windows end ``dropped_days`` before the end of ``bars_5m``."""
    with farm_settings(home) as settings:
        config = settings.load_config()
        versions = []
        for i, days in enumerate(dropped_days):
            window = bars_5m.filter(pl.col("date") < pl.col("date").max() - pl.duration(days=days))
            snapshot = build_snapshot(
                window, symbol=PACK_SYMBOL, timeframe=PACK_TF, config=config, root=settings.datasets_dir
            )
            work_dir = home / f"run{i}"
            stage, results = train_base_models(
                snapshot, work_dir, config, symbol=PACK_SYMBOL, timeframe=PACK_TF
            )
            built = build_version(
                stage,
                snapshot,
                results,
                work_dir,
                threads=1,
                run_created_at=FIRST_VERSION_AT + timedelta(hours=i),
            )
            versions.append(Version(built.version, built.path, built.manifest_sha256))
    assert [v.version for v in versions] == sorted(v.version for v in versions)
    assert len({v.manifest_sha256 for v in versions}) == len(versions)
    return versions


def register_pack(registry: Registry, pack: Path, manifest_sha256: str, reason: str) -> str:
    """Record the pack at ``pack`` as a candidate version of PACK_SYMBOL/PACK_TF (through a run of its own,
    with the manifest's metrics and gate report); returns its version id."""
    manifest = read_manifest(pack, expected_sha256=manifest_sha256)
    run = registry.runs.create(PACK_SYMBOL, PACK_TF, reason)
    version = str(manifest["version"])
    registry.versions.add(
        version,
        PACK_SYMBOL,
        PACK_TF.value,
        run.id,
        metrics=manifest["metrics"],  # type: ignore[arg-type]
        path=str(pack),
        manifest_sha256=manifest_sha256,
        gate_report=manifest["gate_report"],  # type: ignore[arg-type]
    )
    return version


def train_in_process(symbol: str, timeframe: str, reason: str) -> tuple[StageJob, list[dict[str, object]]]:
    """A retrain of ``symbol``/``timeframe`` up to its meta stage, through the workers' stages in this
    process (no Celery): claim, prepare, the 8 base models one after another; returns the stage job and
    the base models' results (what the chord hands the meta stage)."""
    from trainfarm.workers import stages
    from trainfarm.workers.payloads import RunJob
    from trainfarm.workers.runs import claim_run

    submitted = claim_run(symbol, timeframe, reason)
    assert not submitted.merged
    stage = stages.prepare(RunJob(run_id=submitted.run_id, symbol=symbol, timeframe=timeframe))
    assert stage is not None and stages.launched(stage)
    results = [
        stages.train_base(stage.model_copy(update={"model": m}), threads=1, device="cpu") for m in MODEL_NAMES
    ]
    return stage, results


def run_in_process(symbol: str, timeframe: str, reason: str) -> str:
    """A whole retrain (:func:`train_in_process`, then the meta stage) in this process; the version id."""
    from trainfarm.workers import stages

    stage, results = train_in_process(symbol, timeframe, reason)
    version = stages.train_meta(stage, results, task_id=f"{stage.run_id}-meta", threads=1)
    assert version is not None
    return version
