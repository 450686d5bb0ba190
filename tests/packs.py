"""Training a run's 8 base models in-process (no Celery): what tests need before calling build_version."""

from __future__ import annotations

import uuid
from pathlib import Path

from trainfarm.shared.config import FarmConfig
from trainfarm.shared.dataset import DatasetSnapshot
from trainfarm.workers.jobs import SnapshotRef, StageJob
from trainfarm.shared.timeframes import Timeframe
from trainfarm.shared.training.base import BaseModelResult, train_base_model
from trainfarm.shared.zoo import MODEL_NAMES


def train_base_models(
    snapshot: DatasetSnapshot, work_dir: Path, config: FarmConfig, *, symbol: str, timeframe: Timeframe
) -> tuple[StageJob, dict[str, BaseModelResult]]:
    """The stage job of a fresh run over ``snapshot`` and its 8 trained base models (one thread each)."""
    run_id = uuid.uuid4().hex
    results = {
        m: train_base_model(
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
    ref = SnapshotRef(
        meta_path=str(Path(snapshot.path).with_suffix(".json")),
        file_sha256=snapshot.file_sha256,
        content_hash=snapshot.content_hash,
    )
    return StageJob(run_id=run_id, symbol=symbol, timeframe=timeframe.value, snapshot=ref), results
