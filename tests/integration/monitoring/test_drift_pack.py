"""A real pack's training distribution, a real bot's live features, and the farm's checks on them.

Uses the session's pack (``pack`` in ``tests/conftest.py``: BTC_USDT 12h on the bundled sample, so
these tests are slow): its manifest carries ``feature_distribution``; an older pack without it still
loads; a LiveModel serving it scores with ``Score.features`` and reports them; the farm ingests them and
finds no skew against its own bars; the drift inputs run the real predictor on the live window.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import redis

from tests.support.packs import PACK_SYMBOL, PACK_TF, Pack
from trainfarm.shared.champions.announce import announce
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.connections import EmbeddedRedis
from trainfarm.shared.data.store import open_store
from trainfarm.shared.dataset.features import FEATURE_NAMES
from trainfarm.shared.monitoring.drift import FeatureDistribution
from trainfarm.shared.packs.predictor import Predictor
from trainfarm.shared.registry import Registry
from trainfarm.shared.registry.models import VersionRecord
from trainfarm.workers.checks.live_window import drift_inputs
from trainfarm.workers.checks.outcome_ingest import ingest
from trainfarm.workers.checks.skew import skew_report
from trainfarm_client.contract import OUTCOMES_STREAM
from trainfarm_client.live import LiveModel
from trainfarm_client.pack import MANIFEST

PARAMS = FarmConfig().params(PACK_TF)


def _manifest(path: Path) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((path / MANIFEST).read_text())
    return loaded


def _rewritten(pack: Pack, target: Path, change: dict[str, object]) -> Predictor:
    """A copy of the pack whose manifest has ``change`` laid over it (loaded without the registered sha)."""
    shutil.copytree(pack.path, target)
    manifest = _manifest(target) | change
    (target / MANIFEST).write_text(json.dumps({k: v for k, v in manifest.items() if v is not None}))
    return Predictor.load(target)


def _champion(registry: Registry, pack: Pack) -> VersionRecord:
    version = str(_manifest(pack.path)["version"])
    run = registry.runs.create(PACK_SYMBOL, PACK_TF, "test")
    registry.versions.add(
        version,
        PACK_SYMBOL,
        PACK_TF,
        run.id,
        metrics={},
        path=str(pack.path),
        manifest_sha256=pack.manifest_sha256,
    )
    registry.champions.promote(version, reason="gate")
    registry.runs.fail(run.id, "done here")
    champion = registry.champions.get(PACK_SYMBOL, PACK_TF)
    assert champion is not None
    return champion


def test_the_pack_ships_the_distribution_its_deployed_models_were_fitted_on(pack: Pack) -> None:
    manifest = _manifest(pack.path)
    dist = FeatureDistribution.from_json(manifest["feature_distribution"])
    deployed = manifest["data"]["deployed"]  # type: ignore[index]
    assert list(dist.fitted_on) == deployed["base_models_fitted_on"] and dist.rows == deployed["rows"]
    assert set(dist.features) == set(FEATURE_NAMES)
    rows = pack.snapshot.frame().filter(pl.col("split").is_in(list(dist.fitted_on)))
    assert dist == FeatureDistribution.fit(
        rows.select(FEATURE_NAMES).to_numpy(), FEATURE_NAMES, fitted_on=dist.fitted_on
    )


def test_an_older_pack_without_it_loads_and_reports_no_feature_drift(
    pack: Pack, tmp_path: Path, farm_home: Path, sample_dir: Path
) -> None:
    older = _rewritten(pack, tmp_path / "older", {"feature_distribution": None})
    older.self_check()
    assert "feature_distribution" not in older.manifest
    open_store().import_file(sample_dir / "BTC_USDT-5m.parquet", PACK_SYMBOL)
    champion = _champion(Registry.open(), pack)
    inputs = drift_inputs(champion, PACK_TF, PARAMS, open_store(), lambda _: older)
    assert inputs.unavailable == {"feature_drift": "pack has no training distribution (older pack)"}


def test_the_live_window_runs_the_real_predictor(
    pack: Pack, tmp_path: Path, farm_home: Path, sample_dir: Path
) -> None:
    open_store().import_file(sample_dir / "BTC_USDT-5m.parquet", PACK_SYMBOL)
    champion = _champion(Registry.open(), pack)
    cut = pack.bars["date"][-301]  # as if the champion's data ended 300 bars ago
    earlier = _rewritten(pack, tmp_path / "earlier", {"data": {"deployed": {"label_end": cut.isoformat()}}})
    inputs = drift_inputs(champion, PACK_TF, PARAMS, open_store(), lambda _: earlier)
    assert inputs.unavailable == {}
    # Whole bars after the cut (the sample has an outage or two), labelled when bar t + horizon is whole.
    whole = pack.bars.filter((pl.col("date") > cut) & (pl.col("bars") == 144))
    assert inputs.live_bars == whole.height > 290
    assert (
        whole.height - PARAMS.label_horizon - 2 <= inputs.labelled_bars <= whole.height - PARAMS.label_horizon
    )
    assert inputs.feature_psi is not None and set(inputs.feature_psi) == set(FEATURE_NAMES) - {
        "hour_sin", "hour_cos", "dow_sin", "dow_cos"
    }  # fmt: skip
    assert inputs.calibration_gap is not None and 0.0 <= inputs.calibration_gap < 1.0


def test_a_bot_reports_the_features_it_scored_and_the_farm_finds_no_skew(
    pack: Pack, farm_home: Path, server: EmbeddedRedis, rds: redis.Redis, sample_dir: Path
) -> None:
    version = str(_manifest(pack.path)["version"])
    registry = Registry.open()
    champion = _champion(registry, pack)
    announce(
        rds,
        symbol=PACK_SYMBOL,
        timeframe=PACK_TF.value,
        version=version,
        manifest_sha256=pack.manifest_sha256,
        pack_path=pack.path,
        event="promoted",
        previous_version=None,
        promoted_at=datetime.now(UTC),
    )
    model = LiveModel(PACK_SYMBOL, PACK_TF.value, redis_url=server.url).start(background=False)
    try:
        scored = [
            model.score(
                pack.bars.head(pack.bars.height - k), now=pack.bars["date"][-1 - k] + PACK_TF.duration
            )
            for k in (2, 1, 0)
        ]
        newest = scored[-1]
        assert newest.features is not None and newest.probabilities is not None
        expected = model.predictor.feature_rows(pack.bars).select(FEATURE_NAMES).row(-1)
        # A decision computes its one row by itself (trainfarm_client/newest.py): the rolling standard
        # deviations differ from add_features' sliding sums in the last bits (about 1e-16), every other
        # feature is equal bit for bit; the farm's skew check allows 1e-6.
        np.testing.assert_allclose(newest.features, expected, rtol=1e-12, atol=1e-15)
        # In the pack's order as a sequence, or by name; either way one JSON list in the stream.
        model.report_outcome(signal="up", probability=0.6, at=scored[0].bar, features=scored[0].features)
        model.report_outcome(
            signal="down",
            probability=0.6,
            at=scored[1].bar,
            features=dict(zip(FEATURE_NAMES, scored[1].features, strict=True)),
        )  # type: ignore[arg-type]
        model.report_outcome(signal="up", probability=0.6, at=newest.bar, features=list(newest.features))
        model.report_outcome(signal="up", probability=0.6, at=newest.bar)  # without features: still valid
        with pytest.raises(ValueError, match="values, the pack has"):
            model.report_outcome(signal="up", probability=0.6, at=newest.bar, features=[1.0])
        with pytest.raises(ValueError, match="missing names"):
            model.report_outcome(signal="up", probability=0.6, at=newest.bar, features={"ret_1": 0.0})
    finally:
        model.close()
    entries = rds.xrange(OUTCOMES_STREAM)
    assert len(entries) == 4 and json.loads(entries[0][1]["features"]) == list(scored[0].features)  # type: ignore[arg-type]
    assert ingest(rds, registry).malformed == 0
    open_store().import_file(sample_dir / "BTC_USDT-5m.parquet", PACK_SYMBOL)
    report, problem = skew_report(registry, open_store(), champion, PACK_TF, PARAMS)
    assert problem is None and report is not None
    assert (report.checked, report.mismatched, report.not_checked) == (3, 0, 0)
