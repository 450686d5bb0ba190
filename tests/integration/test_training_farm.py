"""A whole retrain run through real Celery worker processes on a real Redis (embedded and 127.0.0.1:6379)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.farm import SYMBOL, TF, Farm, start_farm
from tests.support.waiting import wait_until
from trainfarm.shared.connections import redis_client
from trainfarm.shared.packs.artifacts import read_manifest
from trainfarm.shared.settings import get_settings
from trainfarm.shared.zoo import MODEL_NAMES

pytestmark = pytest.mark.integration


def test_full_run_trains_eight_models_and_writes_a_verified_pack(farm: Farm) -> None:
    from trainfarm.shared.packs.predictor import Predictor
    from trainfarm.workers.tasks import submit_retrain

    submitted = submit_retrain(SYMBOL, TF, "integration test")
    again = submit_retrain(SYMBOL, TF, "second trigger")  # concurrent trigger merges into the running run
    assert again.run_id == submitted.run_id and again.merged
    assert farm.wait_run(submitted.run_id) == "succeeded", farm.workers[0].log()[-4000:]

    reg = farm.registry()
    run = reg.runs.get(submitted.run_id)
    assert run.version and run.snapshot_hash and run.finished_at
    results = reg.runs.base_results(run.id)
    assert sorted(r.model for r in results) == sorted(MODEL_NAMES)
    assert all(
        r.status == "succeeded" and r.device == "cpu" and r.worker and (r.seconds or 0) > 0 for r in results
    )
    version = farm.wait_settled(run.id)
    assert version.status in ("champion", "rejected")  # decided by the gates
    assert version.gate_report is not None
    meta = version.metrics["meta"]
    assert isinstance(meta, dict) and 0 < float(meta["logloss"]) < 5
    pack = Path(version.path)
    manifest = read_manifest(pack, expected_sha256=version.manifest_sha256)
    assert len(manifest["base_models"]) == 8  # type: ignore[arg-type]
    assert (pack / "plots" / "calibration.png").read_bytes().startswith(b"\x89PNG")
    predictor = Predictor.load(pack)
    predictor.self_check()  # rebuilds features -> 8 base models -> 55 features -> meta -> calibration
    assert not list(pack.parent.glob(".staging-*"))
    # The run is recorded as succeeded with its version, then settled; its staging goes last.
    staging = get_settings().runs_dir / run.id
    wait_until(
        lambda: not staging.exists(), 60, "staging folder removed", process=farm.workers[0], every=0.25
    )
    # The market is free again: a new trigger makes a new run.
    assert submit_retrain(SYMBOL, TF, "after").run_id != run.id


def test_failing_base_model_fails_the_run_through_the_errback(failing_farm: Farm) -> None:
    from trainfarm.workers.tasks import submit_retrain

    submitted = submit_retrain(SYMBOL, TF, "errback test")
    assert failing_farm.wait_run(submitted.run_id) == "failed"
    run = failing_farm.registry().runs.get(submitted.run_id)
    assert run.failed_model == "xgb_shallow"
    assert run.error and "no-such-objective" in run.error
    assert run.version is None
    assert failing_farm.registry().versions.of_market(SYMBOL, TF) == []
    tf_dir = get_settings().artifacts_dir / SYMBOL / TF
    assert not tf_dir.exists() or not any(tf_dir.iterdir())  # no half-built version
    # Models still training when the run failed clean up after themselves.
    staging = get_settings().runs_dir / run.id
    wait_until(
        lambda: not staging.exists(),
        120,
        "staging folder removed",
        process=failing_farm.workers[0],
        every=0.25,
    )
    assert submit_retrain(SYMBOL, TF, "after failure").run_id != run.id  # the market is free again
    # The errback ran for the failing header task and for the chord: the failure is announced once.
    client = redis_client()
    try:
        events = [json.loads(f["data"]) for _, f in client.xrange("farm:events") if f["event"] == "failed"]
    finally:
        client.close()
    assert [e["run_id"] for e in events] == [run.id]


def test_duplicated_header_task_makes_one_meta_stage(farm: Farm) -> None:
    from celery import chord

    from trainfarm.workers import stages
    from trainfarm.workers.payloads import RunJob
    from trainfarm.workers.runs import claim_run
    from trainfarm.workers.tasks import train_base, train_meta

    claimed = claim_run(SYMBOL, TF, "duplicate header test")
    stage = stages.prepare(RunJob(run_id=claimed.run_id, symbol=SYMBOL, timeframe=TF))
    assert stage is not None
    payload = stage.model_dump(mode="json")
    header = [
        train_base.signature(args=({**payload, "model": m},), task_id=f"{stage.run_id}-{m}")
        for m in MODEL_NAMES
    ]
    header.append(header[0].clone())  # the same task, delivered twice
    body = train_meta.signature(args=(payload,), task_id=f"{stage.run_id}-meta")
    chord(header, body).apply_async()
    stages.launched(stage)
    assert farm.wait_run(stage.run_id) == "succeeded", farm.workers[0].log()[-4000:]
    # The body delivered once more (as a duplicated header can cause) must not make a second version.
    again = train_meta.apply_async(args=([], payload), task_id=f"{stage.run_id}-meta-dup")
    assert again.get(timeout=120)["version"] == farm.registry().runs.get(stage.run_id).version
    assert len(farm.registry().versions.of_market(SYMBOL, TF)) == 1


@pytest.fixture
def meta_farm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sample_dir: Path) -> Iterator[Farm]:
    """The BTC sample's 12h test split (about 110 bars after a rejected candidate's data) is enough here."""
    extra = "[timeframes.12h]\nmeta_min_rows = 40\n"
    yield from start_farm(tmp_path, monkeypatch, sample_dir, "embedded", extra)


def test_a_meta_only_run_through_a_worker_and_the_full_retrain_merged_into_it(meta_farm: Farm) -> None:
    """farm.meta_refit on a real worker; a full retrain asked for meanwhile runs after it, not lost."""
    from trainfarm.shared.champions.publish import promote_version
    from trainfarm.shared.registry import PromotionReason, RunKind
    from trainfarm.workers.tasks import submit_retrain

    full = submit_retrain(SYMBOL, TF, "first")
    assert meta_farm.wait_run(full.run_id) == "succeeded", meta_farm.workers[0].log()[-4000:]
    reg = meta_farm.registry()
    version = reg.runs.get(full.run_id).version
    assert version is not None
    # A rejected candidate ships as evaluated (fitted through its calibration split): its test split's
    # bars come after its data. The meta-only run needs a champion, not a good one.
    assert meta_farm.wait_settled(full.run_id).status == "rejected"  # real 12h bars with tiny models
    promote_version(version, PromotionReason.MANUAL)

    meta = submit_retrain(SYMBOL, TF, "test", kind=RunKind.META)
    assert meta.skipped is None and meta.kind == RunKind.META and not meta.merged
    merged = submit_retrain(SYMBOL, TF, "cli:forced")
    assert merged.merged and merged.run_id == meta.run_id
    assert meta_farm.wait_run(meta.run_id) == "succeeded", meta_farm.workers[0].log()[-4000:]
    run = reg.runs.get(meta.run_id)
    assert run.kind == RunKind.META and run.reasons == ["meta:test", "cli:forced"]
    assert reg.runs.base_results(run.id) == []
    assert run.version is not None
    refit = read_manifest(Path(reg.versions.get(run.version).path))
    champion = read_manifest(Path(reg.versions.get(version).path))
    assert [m["sha256"] for m in refit["base_models"]] == [m["sha256"] for m in champion["base_models"]]  # type: ignore[union-attr]

    def follow_up() -> list[str]:
        return [
            r.id
            for r in reg.runs.newest(SYMBOL, TF)
            if r.reasons == [f"after meta-only run {run.id[:8]}: cli:forced"]
        ]

    wait_until(
        lambda: bool(follow_up()),
        60,
        "the full retrain merged into the meta-only run",
        process=meta_farm.workers[0],
        every=0.25,
    )
    after = reg.runs.get(follow_up()[0])
    assert after.kind == RunKind.FULL
    assert meta_farm.wait_run(after.id) == "succeeded", meta_farm.workers[0].log()[-4000:]
