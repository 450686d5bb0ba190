"""A whole retrain run through trainfarm.workers.stages without Celery: the tasks are thin, the logic is tested here.

One farm home for the module (small models, BTC sample at 12h, embedded Redis, SQLite registry); the run
is built once and every test reads it. Tests that need another run claim, use and end it themselves, so
the (symbol, timeframe) slot is free again afterwards.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from trainfarm.workers import stages as pipeline
from trainfarm.shared.connections import embedded_redis, redis_client
from trainfarm.shared.data.store import open_store
from trainfarm.shared.errors import DataError, FarmError
from trainfarm.workers.jobs import RunJob, SnapshotRef, StageJob
from trainfarm.shared.predictor import Predictor
from trainfarm.shared.registry import Registry, dispose_engine
from trainfarm.workers.runs import HeaderResultError, claim_meta, claim_slot, slot_holder, slot_key
from trainfarm.shared.settings import get_settings
from trainfarm.shared.training.base import result_path
from trainfarm.shared.zoo import MODEL_NAMES

SYMBOL, TF = "BTC_USDT", "12h"

#: Small models (as in the integration tests): this checks the steps, not the model quality.
SMALL_CONFIG = """
[universe]
symbols = ["BTC_USDT"]
timeframes = ["12h"]
[training]
base_rounds = 12
meta_rounds = 40
early_stopping_rounds = 5
task_time_limit = "5m"
"""


@dataclass(frozen=True)
class BuiltRun:
    """The module's one complete run, and what was observed while it ran."""

    job: RunJob
    stage: StageJob
    results: list[dict[str, object]]
    version: str
    saved_run_dir: Path  #: copy of the run's staging folder after the 8 base models, before the meta stage
    merged_while_running: pipeline.Submitted  #: a second trigger during the run
    status_while_training: str


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Iterator[Path]:
    """A farm home with the small config and the BTC sample imported; its Redis is stopped at the end."""
    home = tmp_path_factory.mktemp("pipeline") / "home"
    home.mkdir()
    config = home / "farm.toml"
    config.write_text(SMALL_CONFIG)
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith("FARM_"):
                mp.delenv(key)
        mp.setenv("FARM_HOME", str(home))
        mp.setenv("FARM_CONFIG_FILE", str(config))
        get_settings.cache_clear()
        try:
            open_store().import_file(sample_dir / "BTC_USDT-5m.parquet", SYMBOL)
            yield home
        finally:
            embedded_redis().stop()
            dispose_engine(get_settings().database)
            get_settings.cache_clear()


def _train_all(stage: StageJob) -> list[dict[str, object]]:
    return [
        pipeline.train_base(stage.model_copy(update={"model": m}), threads=1, device="cpu")
        for m in MODEL_NAMES
    ]


@pytest.fixture(scope="module")
def run(farm: Path, tmp_path_factory: pytest.TempPathFactory) -> BuiltRun:
    submitted = pipeline.claim_run(SYMBOL, TF, "unit test")
    assert not submitted.merged
    job = RunJob(run_id=submitted.run_id, symbol=SYMBOL, timeframe=TF)
    stage = pipeline.prepare(job)
    assert stage is not None
    results = _train_all(stage)
    merged = pipeline.claim_run(SYMBOL, TF, "second trigger while training")
    status = Registry.open().get_run(job.run_id).status
    saved = tmp_path_factory.mktemp("saved") / job.run_id
    shutil.copytree(pipeline.run_dir(job.run_id), saved)
    version = pipeline.train_meta(stage, results, task_id="t1", threads=1)
    assert version is not None
    return BuiltRun(job, stage, results, version, saved, merged, str(status))


def _holder() -> str | None:
    client = redis_client()
    try:
        return slot_holder(client, SYMBOL, TF)
    finally:
        client.close()


@pytest.fixture
def second_run(run: BuiltRun) -> Iterator[StageJob]:
    """Another run of the same market, prepared (status 'training'); failed and its slot freed afterwards."""
    submitted = pipeline.claim_run(SYMBOL, TF, "another run")
    assert not submitted.merged and submitted.run_id != run.job.run_id
    stage = pipeline.prepare(RunJob(run_id=submitted.run_id, symbol=SYMBOL, timeframe=TF))
    assert stage is not None
    try:
        yield stage
    finally:
        pipeline.fail(stage, "test cleanup", model=None)
        assert _holder() is None


# --- the successful run --------------------------------------------------------------------------------


def test_run_registers_a_candidate_version(run: BuiltRun) -> None:
    registry = Registry.open()
    record = registry.get_run(run.job.run_id)
    assert record.status == "succeeded" and record.version == run.version
    assert record.finished_at is not None and record.snapshot_hash == run.stage.snapshot.content_hash
    version = registry.get_version(run.version)
    assert version.status in ("champion", "rejected") and version.run_id == run.job.run_id
    assert version.gate_report is not None and version.gate_report["passed"] is (version.status == "champion")
    assert [v.version for v in registry.list_versions(SYMBOL, TF)] == [run.version]
    base = registry.base_results(run.job.run_id)
    assert sorted(r.model for r in base) == sorted(MODEL_NAMES)
    assert all(r.status == "succeeded" and r.device == "cpu" for r in base)
    assert [r["model"] for r in run.results] == list(MODEL_NAMES)


def test_pack_loads_verified_and_reproduces_its_sample_rows(run: BuiltRun) -> None:
    version = Registry.open().get_version(run.version)
    predictor = Predictor.load(Path(version.path), expected_manifest_sha256=version.manifest_sha256)
    predictor.self_check()
    assert predictor.version == run.version
    assert predictor.manifest["run_id"] == run.job.run_id
    assert [b["name"] for b in predictor.manifest["base_models"]] == list(MODEL_NAMES)
    assert 0 < predictor.p_star < 1


def test_slot_and_staging_folder_are_freed(run: BuiltRun) -> None:
    assert _holder() is None
    assert not pipeline.run_dir(run.job.run_id).exists()
    assert (run.saved_run_dir / "base").is_dir()  # it did exist while the models trained
    version_dir = get_settings().artifacts_dir / SYMBOL / TF
    assert not list(version_dir.glob(".staging-*"))


def test_second_trigger_while_running_merged_into_the_run(run: BuiltRun) -> None:
    assert run.status_while_training == "training"
    assert run.merged_while_running == pipeline.Submitted(run.job.run_id, SYMBOL, TF, merged=True)


def test_second_meta_delivery_returns_the_same_version(run: BuiltRun) -> None:
    assert pipeline.train_meta(run.stage, run.results, task_id="t2", threads=1) == run.version
    assert pipeline.train_meta(run.stage, [], task_id="t3", threads=1) == run.version
    registry = Registry.open()
    assert [v.version for v in registry.list_versions(SYMBOL, TF)] == [run.version]
    assert registry.get_run(run.job.run_id).version == run.version
    assert _holder() is None


def test_prepare_on_a_finished_run_does_nothing(run: BuiltRun) -> None:
    assert pipeline.prepare(run.job) is None
    assert Registry.open().get_run(run.job.run_id).status == "succeeded"


# --- results from the chord header ---------------------------------------------------------------------


@pytest.fixture
def restored_run_dir(run: BuiltRun) -> Iterator[Path]:
    """The run's staging folder as it was before the meta stage removed it (removed again afterwards)."""
    target = pipeline.run_dir(run.job.run_id)
    shutil.copytree(run.saved_run_dir, target)
    try:
        yield target
    finally:
        shutil.rmtree(target, ignore_errors=True)


def test_collect_results_takes_a_missing_model_from_the_run_folder(
    run: BuiltRun, restored_run_dir: Path
) -> None:
    absent = MODEL_NAMES[4]
    partial = [r for r in run.results if r["model"] != absent]
    collected = pipeline.collect_results(run.stage, partial)
    assert sorted(collected) == sorted(MODEL_NAMES)
    assert collected[absent].to_json() == run.results[4]
    # An identical duplicate (a header task delivered twice) is folded in as well.
    assert sorted(pipeline.collect_results(run.stage, [*partial, partial[0]])) == sorted(MODEL_NAMES)


def test_collect_results_names_a_model_missing_everywhere(run: BuiltRun, restored_run_dir: Path) -> None:
    absent = MODEL_NAMES[6]
    result_path(restored_run_dir, absent).unlink()  # its task never finished
    with pytest.raises(HeaderResultError, match=absent):
        pipeline.collect_results(run.stage, [r for r in run.results if r["model"] != absent])


def test_collect_results_refuses_conflicting_duplicates(run: BuiltRun, restored_run_dir: Path) -> None:
    other = dict(run.results[0]) | {"seconds": 123.0}
    with pytest.raises(HeaderResultError, match=str(run.results[0]["model"])):
        pipeline.collect_results(run.stage, [*run.results, other])


# --- other runs: merging, duplicates, failure ----------------------------------------------------------


def test_prepare_again_while_training_returns_none(second_run: StageJob) -> None:
    job = RunJob(run_id=second_run.run_id, symbol=SYMBOL, timeframe=TF)
    assert pipeline.prepare(job) is None
    assert Registry.open().get_run(job.run_id).status == "training"
    assert _holder() == second_run.run_id


def test_duplicate_meta_body_while_the_first_runs_does_nothing(second_run: StageJob) -> None:
    client = redis_client()
    try:
        assert claim_meta(client, second_run.run_id, "t1", pipeline.slot_ttl_s(get_settings()))
    finally:
        client.close()
    # A second chord body (another task id) must not build a second version, even with no results at all.
    assert pipeline.train_meta(second_run, [], task_id="t2", threads=1) is None
    assert Registry.open().get_run(second_run.run_id).status == "training"
    assert len(Registry.open().list_versions(SYMBOL, TF)) == 1


def test_fail_records_the_failed_model_and_frees_the_slot(second_run: StageJob) -> None:
    broken = second_run.model_copy(
        update={
            "model": "xgb_shallow",
            "snapshot": SnapshotRef(
                meta_path=second_run.snapshot.meta_path,
                file_sha256="0" * 64,
                content_hash=second_run.snapshot.content_hash,
            ),
        }
    )
    with pytest.raises(DataError, match="snapshot differs"):
        pipeline.train_base(broken, threads=1, device="cpu")
    registry = Registry.open()
    [base] = registry.base_results(second_run.run_id)
    assert (base.model, base.status) == ("xgb_shallow", "failed")

    # The chord's errback knows only the body's error; the failed model comes from its own record.
    pipeline.fail(second_run, "ChordError: a header task failed", model=None)
    record = registry.get_run(second_run.run_id)
    assert record.status == "failed" and record.failed_model == "xgb_shallow"
    assert record.error is not None and "snapshot differs" in record.error
    assert record.version is None
    assert _holder() is None
    assert not pipeline.run_dir(second_run.run_id).exists()
    assert len(registry.list_versions(SYMBOL, TF)) == 1

    # A base task of the failed run delivered later refuses to train.
    late = second_run.model_copy(update={"model": "lgbm_gbdt"})
    with pytest.raises(FarmError, match="has ended"):
        pipeline.train_base(late, threads=1, device="cpu")
    assert [r.model for r in registry.base_results(second_run.run_id)] == ["xgb_shallow"]
    assert not pipeline.run_dir(second_run.run_id).exists()
    # ... and neither prepare nor the meta stage does anything for it.
    assert pipeline.prepare(second_run) is None
    assert pipeline.train_meta(second_run, [], task_id="t9", threads=1) is None
    assert registry.get_run(second_run.run_id).status == "failed"


def test_slot_claimed_a_moment_ago_is_merged_into_not_stolen(run: BuiltRun) -> None:
    """A concurrent trigger holds the slot but has not written its run yet: merge, do not take over."""
    racing = "c" * 32
    ttl = pipeline.slot_ttl_s(get_settings())
    client = redis_client()
    try:
        assert claim_slot(client, SYMBOL, TF, racing, ttl).acquired
        merged = pipeline.claim_run(SYMBOL, TF, "concurrent trigger")
        assert merged == pipeline.Submitted(racing, SYMBOL, TF, merged=True)
        # Claimed long ago and still not in the registry: its trigger died; the slot is taken over.
        client.pexpire(slot_key(SYMBOL, TF), (ttl - pipeline.REGISTER_GRACE_S - 5) * 1000)
        fresh = pipeline.claim_run(SYMBOL, TF, "after the grace period")
        assert not fresh.merged and fresh.run_id != racing
        assert slot_holder(client, SYMBOL, TF) == fresh.run_id
        pipeline.fail(RunJob(run_id=fresh.run_id, symbol=SYMBOL, timeframe=TF), "test cleanup", model=None)
        assert slot_holder(client, SYMBOL, TF) is None
    finally:
        client.delete(slot_key(SYMBOL, TF))
        client.close()


def test_a_finished_holder_that_kept_its_slot_is_replaced(run: BuiltRun) -> None:
    client = redis_client()
    try:
        claim_slot(client, SYMBOL, TF, run.job.run_id, pipeline.slot_ttl_s(get_settings()))  # never released
        fresh = pipeline.claim_run(SYMBOL, TF, "after a lost release")
        assert not fresh.merged and fresh.run_id != run.job.run_id
        pipeline.abandon_run(RunJob(run_id=fresh.run_id, symbol=SYMBOL, timeframe=TF), "test cleanup")
        assert Registry.open().get_run(fresh.run_id).status == "failed"
        assert slot_holder(client, SYMBOL, TF) is None
    finally:
        client.delete(slot_key(SYMBOL, TF))
        client.close()
