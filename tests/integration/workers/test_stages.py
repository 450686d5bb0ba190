"""A whole retrain run through trainfarm.workers.stages without Celery: tasks are thin, the logic is here.

One farm home for the module (small models, BTC sample at 12h, embedded Redis, SQLite registry); the run
is built once and every test reads it. Tests that need another run claim, use and end it themselves, so
the market has no active run again afterwards.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.packs import farm_settings
from trainfarm.shared.connections import embedded_redis, redis_client
from trainfarm.shared.data.store import open_store
from trainfarm.shared.errors import (
    ConfigMismatchError,
    DataError,
    HeaderResultError,
    MissingHeaderResultError,
    RunEndedError,
)
from trainfarm.shared.packs.predictor import Predictor
from trainfarm.shared.registry import Registry, dispose_engine
from trainfarm.shared.settings import get_settings
from trainfarm.shared.training.base import result_path
from trainfarm.shared.zoo import MODEL_NAMES
from trainfarm.workers import stages
from trainfarm.workers.payloads import RunJob, SnapshotRef, StageJob
from trainfarm.workers.runs import Submitted, claim_meta, claim_run, run_dir

SYMBOL, TF = "BTC_USDT", "12h"


@dataclass(frozen=True)
class BuiltRun:
    """The module's one complete run, and what was observed while it ran."""

    job: RunJob
    stage: StageJob
    results: list[dict[str, object]]
    version: str
    saved_run_dir: Path  #: copy of the run's staging folder after the 8 base models, before the meta stage
    merged_while_running: Submitted  #: a second trigger during the run
    status_after_prepare: str  #: before the chord was launched
    status_while_training: str


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Iterator[Path]:
    """A farm home with small models and the BTC sample imported; its Redis is stopped at the end."""
    home = tmp_path_factory.mktemp("pipeline") / "home"
    with farm_settings(home) as settings:
        try:
            open_store().import_file(sample_dir / "BTC_USDT-5m.parquet", SYMBOL)
            yield home
        finally:
            embedded_redis().stop()
            dispose_engine(settings.database)


def _train_all(stage: StageJob) -> list[dict[str, object]]:
    return [
        stages.train_base(stage.model_copy(update={"model": m}), threads=1, device="cpu") for m in MODEL_NAMES
    ]


@pytest.fixture(scope="module")
def run(home: Path, tmp_path_factory: pytest.TempPathFactory) -> BuiltRun:
    submitted = claim_run(SYMBOL, TF, "unit test")
    assert not submitted.merged
    job = RunJob(run_id=submitted.run_id, symbol=SYMBOL, timeframe=TF)
    stage = stages.prepare(job)
    assert stage is not None
    status_prepared = Registry.open().runs.get(job.run_id).status
    assert stages.launched(stage)  # what the prepare task records once it has launched the chord
    results = _train_all(stage)
    merged = claim_run(SYMBOL, TF, "second trigger while training")
    status = Registry.open().runs.get(job.run_id).status
    saved = tmp_path_factory.mktemp("saved") / job.run_id
    shutil.copytree(run_dir(job.run_id), saved)
    version = stages.train_meta(stage, results, task_id="t1", threads=1)
    assert version is not None
    return BuiltRun(job, stage, results, version, saved, merged, str(status_prepared), str(status))


def _active() -> str | None:
    active = Registry.open().runs.active(SYMBOL, TF)
    return active.id if active is not None else None


@pytest.fixture
def second_run(run: BuiltRun) -> Iterator[StageJob]:
    """Another run of the same market, prepared and launched ('training'); failed afterwards."""
    submitted = claim_run(SYMBOL, TF, "another run")
    assert not submitted.merged and submitted.run_id != run.job.run_id
    stage = stages.prepare(RunJob(run_id=submitted.run_id, symbol=SYMBOL, timeframe=TF))
    assert stage is not None and stages.launched(stage)
    try:
        yield stage
    finally:
        stages.fail(stage, "test cleanup", model=None)
        assert _active() is None


# --- the successful run --------------------------------------------------------------------------------


def test_run_registers_a_candidate_version(run: BuiltRun) -> None:
    registry = Registry.open()
    record = registry.runs.get(run.job.run_id)
    assert record.status == "succeeded" and record.version == run.version
    assert record.finished_at is not None and record.snapshot_hash == run.stage.snapshot.content_hash
    version = registry.versions.get(run.version)
    assert version.status in ("champion", "rejected") and version.run_id == run.job.run_id
    assert version.gate_report is not None and version.gate_report["passed"] is (version.status == "champion")
    assert [v.version for v in registry.versions.of_market(SYMBOL, TF)] == [run.version]
    base = registry.runs.base_results(run.job.run_id)
    assert sorted(r.model for r in base) == sorted(MODEL_NAMES)
    assert all(r.status == "succeeded" and r.device == "cpu" for r in base)
    assert [r["model"] for r in run.results] == list(MODEL_NAMES)


def test_pack_loads_verified_and_reproduces_its_sample_rows(run: BuiltRun) -> None:
    version = Registry.open().versions.get(run.version)
    predictor = Predictor.load(Path(version.path), expected_manifest_sha256=version.manifest_sha256)
    predictor.self_check()
    assert predictor.version == run.version
    assert predictor.manifest["run_id"] == run.job.run_id
    assert [b["name"] for b in predictor.manifest["base_models"]] == list(MODEL_NAMES)
    assert 0 < predictor.p_star < 1


def test_the_market_is_free_and_the_staging_folder_removed(run: BuiltRun) -> None:
    assert _active() is None
    assert not run_dir(run.job.run_id).exists()
    assert (run.saved_run_dir / "base").is_dir()  # it did exist while the models trained
    version_dir = get_settings().artifacts_dir / SYMBOL / TF
    assert not list(version_dir.glob(".staging-*"))


def test_second_trigger_while_running_merged_into_the_run(run: BuiltRun) -> None:
    assert run.status_after_prepare == "preparing"  # training only once the chord is launched
    assert run.status_while_training == "training"
    assert run.merged_while_running == Submitted(run.job.run_id, SYMBOL, TF, merged=True)


def test_second_meta_delivery_returns_the_same_version(run: BuiltRun) -> None:
    assert stages.train_meta(run.stage, run.results, task_id="t2", threads=1) == run.version
    assert stages.train_meta(run.stage, [], task_id="t3", threads=1) == run.version
    registry = Registry.open()
    assert [v.version for v in registry.versions.of_market(SYMBOL, TF)] == [run.version]
    assert registry.runs.get(run.job.run_id).version == run.version
    assert _active() is None


def test_prepare_on_a_finished_run_does_nothing(run: BuiltRun) -> None:
    assert stages.prepare(run.job) is None
    assert Registry.open().runs.get(run.job.run_id).status == "succeeded"


# --- results from the chord header ---------------------------------------------------------------------


@pytest.fixture
def restored_run_dir(run: BuiltRun) -> Iterator[Path]:
    """The run's staging folder as it was before the meta stage removed it (removed again afterwards)."""
    target = run_dir(run.job.run_id)
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
    collected = stages.collect_results(run.stage, partial)
    assert sorted(collected) == sorted(MODEL_NAMES)
    assert collected[absent].to_json() == run.results[4]
    # An identical duplicate (a header task delivered twice) is folded in as well.
    assert sorted(stages.collect_results(run.stage, [*partial, partial[0]])) == sorted(MODEL_NAMES)


def test_collect_results_names_a_model_missing_everywhere(run: BuiltRun, restored_run_dir: Path) -> None:
    absent = MODEL_NAMES[6]
    result_path(restored_run_dir, absent).unlink()  # its task never finished
    with pytest.raises(MissingHeaderResultError, match=absent):
        stages.collect_results(run.stage, [r for r in run.results if r["model"] != absent])


def test_collect_results_refuses_conflicting_duplicates(run: BuiltRun, restored_run_dir: Path) -> None:
    other = dict(run.results[0]) | {"seconds": 123.0}
    with pytest.raises(HeaderResultError, match=str(run.results[0]["model"])):
        stages.collect_results(run.stage, [*run.results, other])


# --- other runs: merging, duplicates, failure ----------------------------------------------------------


def test_prepare_again_while_training_returns_none(second_run: StageJob) -> None:
    job = RunJob(run_id=second_run.run_id, symbol=SYMBOL, timeframe=TF)
    assert stages.prepare(job) is None
    assert Registry.open().runs.get(job.run_id).status == "training"
    assert _active() == second_run.run_id


def test_duplicate_meta_body_while_the_first_runs_does_nothing(second_run: StageJob) -> None:
    client = redis_client()
    try:
        assert claim_meta(client, second_run.run_id, "t1", stages.meta_guard_ttl_s())
    finally:
        client.close()
    # A second chord body (another task id) must not build a second version, even with no results at all.
    assert stages.train_meta(second_run, [], task_id="t2", threads=1) is None
    assert Registry.open().runs.get(second_run.run_id).status == "training"
    assert len(Registry.open().versions.of_market(SYMBOL, TF)) == 1


def test_fail_records_the_failed_model_once_and_frees_the_market(second_run: StageJob) -> None:
    broken = second_run.model_copy(
        update={
            "model": "xgb_shallow",
            "snapshot": SnapshotRef(
                path=second_run.snapshot.path,
                file_sha256="0" * 64,
                content_hash=second_run.snapshot.content_hash,
            ),
        }
    )
    with pytest.raises(DataError, match="snapshot differs"):
        stages.train_base(broken, threads=1, device="cpu")
    registry = Registry.open()
    [base] = registry.runs.base_results(second_run.run_id)
    assert (base.model, base.status) == ("xgb_shallow", "failed")

    # The chord's errback knows only the body's error; the failed model comes from its own record.
    assert stages.fail(second_run, "ChordError: a header task failed", model=None)
    record = registry.runs.get(second_run.run_id)
    assert record.status == "failed" and record.failed_model == "xgb_shallow"
    assert record.error is not None and "snapshot differs" in record.error
    assert record.version is None
    assert _active() is None
    # The errback runs again for each failing header task and for the body: nothing more is recorded.
    assert not stages.fail(second_run, "ChordError: another header task failed", model="lgbm_gbdt")
    assert registry.runs.get(second_run.run_id).error == record.error
    assert _failed_events(second_run.run_id) == 1
    assert not run_dir(second_run.run_id).exists()
    assert len(registry.versions.of_market(SYMBOL, TF)) == 1

    # A base task of the failed run delivered later refuses to train.
    late = second_run.model_copy(update={"model": "lgbm_gbdt"})
    with pytest.raises(RunEndedError, match="has ended"):
        stages.train_base(late, threads=1, device="cpu")
    assert [r.model for r in registry.runs.base_results(second_run.run_id)] == ["xgb_shallow"]
    assert not run_dir(second_run.run_id).exists()
    # ... and neither prepare nor the meta stage does anything for it.
    assert stages.prepare(second_run) is None
    assert stages.train_meta(second_run, [], task_id="t9", threads=1) is None
    assert registry.runs.get(second_run.run_id).status == "failed"


def _failed_events(run_id: str) -> int:
    client = redis_client()
    try:
        entries = client.xrange("farm:events")
    finally:
        client.close()
    return sum(
        1 for _, f in entries if f.get("event") == "failed" and json.loads(f["data"])["run_id"] == run_id
    )


def test_a_succeeded_run_is_never_failed_or_announced_as_failed(run: BuiltRun) -> None:
    """A late header task's complaint about a run that succeeded changes nothing and announces nothing."""
    assert not stages.fail(run.job, "RunEndedError: run has ended; not training lgbm_gbdt", model="lgbm_gbdt")
    record = Registry.open().runs.get(run.job.run_id)
    assert record.status == "succeeded" and record.error is None
    assert _failed_events(run.job.run_id) == 0


def test_a_stage_refuses_a_run_prepared_with_another_config(run: BuiltRun) -> None:
    other = run.stage.model_copy(update={"config_hash": "f" * 64, "model": "lgbm_gbdt"})
    with pytest.raises(ConfigMismatchError, match=r"prepared with config ffffffffffff"):
        stages.train_base(other, threads=1, device="cpu")
    with pytest.raises(ConfigMismatchError):
        stages.train_meta(other, run.results, task_id="t-config", threads=1)


def test_the_stage_payload_names_the_snapshot_relative_to_the_artifact_root(run: BuiltRun) -> None:
    ref = run.stage.snapshot
    assert not Path(ref.path).is_absolute() and ref.path.startswith("datasets/")
    assert ref.resolve(get_settings().artifacts_dir).is_file()
    assert str(get_settings().home) not in json.dumps(run.stage.model_dump(mode="json"))


def test_a_second_prepare_before_the_launch_was_recorded_prepares_again(run: BuiltRun) -> None:
    """A prepare task that died before its chord was launched is redelivered: it must prepare again."""
    submitted = claim_run(SYMBOL, TF, "dies before launching")
    job = RunJob(run_id=submitted.run_id, symbol=SYMBOL, timeframe=TF)
    try:
        first = stages.prepare(job)
        assert first is not None  # ... and the worker dies here, before launching the chord
        again = stages.prepare(job)  # the redelivered task
        assert again == first
        assert stages.launched(again)
        assert stages.prepare(job) is None  # launched: a third delivery does nothing
    finally:
        stages.fail(job, "test cleanup", model=None)
