"""The meta stage's thread use: NumPy's BLAS and OpenMP held to the task's threads while it runs."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from threadpoolctl import threadpool_info  # type: ignore[import-untyped]

from tests.support.packs import PACK_SYMBOL, PACK_TF, farm_settings, train_base_models
from trainfarm.shared.dataset.snapshot import build_snapshot
from trainfarm.shared.training import meta_stage
from trainfarm.shared.training.judging import Judgement

pytestmark = pytest.mark.slow

BLAS = {"openblas", "mkl", "blis", "flexiblas"}


def test_the_meta_stage_holds_blas_and_openmp_to_its_threads(
    tmp_path: Path, sample_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a worker slot the stage shares the cores: a BLAS sized to the machine oversubscribed them."""
    seen: list[dict[str, int]] = []
    real_judge = meta_stage.judge

    def recording(*args: Any, **kwargs: Any) -> Judgement:
        seen.append(_pools())
        return real_judge(*args, **kwargs)

    monkeypatch.setattr(meta_stage, "judge", recording)
    home = tmp_path / "home"
    bars = pl.read_parquet(sample_dir / "BTC_USDT-5m.parquet")
    with farm_settings(home) as settings:
        config = settings.load_config()
        snapshot = build_snapshot(
            bars, symbol=PACK_SYMBOL, timeframe=PACK_TF, config=config, root=settings.datasets_dir
        )
        stage, results = train_base_models(
            snapshot, home / "run", config, symbol=PACK_SYMBOL, timeframe=PACK_TF
        )
        before = _pools()
        meta_stage.build_version(
            stage, snapshot, results, home / "run", threads=1, run_created_at=datetime.now(UTC)
        )
    (inside,) = seen
    assert BLAS & inside.keys(), f"no BLAS loaded: {inside}"  # NumPy's: the check can fail
    assert set(inside.values()) == {1}, inside
    assert _pools() == before  # and given back afterwards


def _pools() -> dict[str, int]:
    """Threads of each loaded BLAS / OpenMP runtime, by its API."""
    return {info["internal_api"]: int(info["num_threads"]) for info in threadpool_info()}
