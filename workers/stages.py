"""The steps of one retrain run as plain functions; the Celery tasks in ``workers`` only call these.

submit -> prepare (dataset snapshot) -> train_base x 8 (chord header) -> train_meta (chord body)
with ``fail`` as the errback. Every step records what it did in the registry, so the CLI, Flower and
the registry tell the same story, and every step is safe to run twice (Celery delivers at least once).
"""

from __future__ import annotations

import contextlib
import json
import shutil
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from trainfarm.shared.connections import redis_client
from trainfarm.shared.data.store import open_store
from trainfarm.shared.dataset import DatasetSnapshot, build_snapshot, load_snapshot
from trainfarm.shared.errors import DataError, FarmError, TransientError
from trainfarm.workers.jobs import RunJob, SnapshotRef, StageJob
from trainfarm.shared.predictor import Predictor
from trainfarm.shared.promotion import promote_version, prune, reannounce, record_failure, reject_version
from trainfarm.shared.registry import PromotionReason, Registry, RunNotFoundError, VersionRecord
from trainfarm.workers.runs import (
    HeaderResultError,
    SlotClaim,
    claim_meta,
    claim_slot,
    one_result_per_model,
    release_slot,
    slot_age_s,
)
from trainfarm.shared.settings import FarmSettings, get_settings
from trainfarm.shared.training.base import BaseModelResult, result_path, train_base_model
from trainfarm.shared.zoo import MODEL_NAMES, get_spec

#: A run slot expires after this many hard time limits, in case a run dies without releasing it.
_SLOT_LIMITS = 4
#: A slot whose run is not in the registry yet may belong to a trigger that claimed it a moment ago and is
#: still writing the run: for this long it is merged into, only afterwards treated as abandoned.
REGISTER_GRACE_S = 60


@dataclass(frozen=True)
class Submitted:
    """What `farm retrain` reports for one (symbol, timeframe)."""

    run_id: str
    symbol: str
    timeframe: str
    merged: bool  #: True when an existing run already covered this trigger


def slot_ttl_s(settings: FarmSettings) -> int:
    return _SLOT_LIMITS * settings.load_config().training.task_time_limit_s


def claim_run(symbol: str, timeframe: str, reason: str) -> Submitted:
    """Create a run for (symbol, timeframe) unless one is running; then return that one's id."""
    settings = get_settings()
    registry = Registry.open()
    client = redis_client(settings)
    try:
        ttl = slot_ttl_s(settings)
        for _ in range(3):  # bounded: each pass either claims, merges, or clears one stale holder
            claim: SlotClaim = claim_slot(client, symbol, timeframe, uuid.uuid4().hex, ttl)
            if claim.acquired:
                registry.create_run(symbol, timeframe, reason, run_id=claim.run_id)
                return Submitted(claim.run_id, symbol, timeframe, merged=False)
            try:
                holder_status: str | None = registry.get_run(claim.run_id).status
            except RunNotFoundError:
                holder_status = None
                # Claimed between its SET and its registry insert by a concurrent trigger: not stale yet.
                age = slot_age_s(client, symbol, timeframe, ttl)
                if age is not None and age < REGISTER_GRACE_S:
                    return Submitted(claim.run_id, symbol, timeframe, merged=True)
            if holder_status is not None and holder_status not in ("succeeded", "failed"):
                return Submitted(claim.run_id, symbol, timeframe, merged=True)
            # The holder finished (or never reached the registry) without releasing its slot.
            release_slot(client, symbol, timeframe, claim.run_id)
        raise FarmError(f"could not claim a run slot for {symbol} {timeframe}; try again")
    finally:
        client.close()


def abandon_run(job: RunJob, error: str) -> None:
    """Mark a run failed before any task ran (enqueueing failed) and free its slot."""
    fail(job, error, model=None)


#: Statuses after which preparing again would launch a second chord for the same run.
_PAST_PREPARE = ("training", "meta", "succeeded", "failed")
_ENDED = ("succeeded", "failed")


def prepare(job: RunJob) -> StageJob | None:
    """Build (or reuse) the run's dataset snapshot and move the run to 'training'.

    Returns None when the run is already past this step (a duplicate delivery of the prepare task).
    """
    settings = get_settings()
    config = settings.load_config()
    registry = Registry.open()
    if registry.get_run(job.run_id).status in _PAST_PREPARE:
        return None
    registry.set_run_status(job.run_id, "preparing")
    bars = open_store().load(job.symbol_id())
    snapshot = build_snapshot(
        bars, symbol=job.symbol_id(), timeframe=job.tf(), config=config, root=settings.datasets_dir
    )
    registry.set_run_status(
        job.run_id,
        "training",
        snapshot_hash=snapshot.content_hash,
        snapshot_path=snapshot.path,
        config_hash=config.config_hash(),
    )
    meta_path = Path(snapshot.path).with_suffix(".json")
    ref = SnapshotRef(
        meta_path=str(meta_path), file_sha256=snapshot.file_sha256, content_hash=snapshot.content_hash
    )
    return StageJob(run_id=job.run_id, symbol=job.symbol_id(), timeframe=job.tf().value, snapshot=ref)


def run_dir(run_id: str) -> Path:
    """Staging folder of one run (base models and their predictions; never read by bots)."""
    return get_settings().runs_dir / run_id


def load_run_snapshot(job: StageJob) -> DatasetSnapshot:
    """The snapshot a stage job names, refusing one whose recorded hash differs from the job's."""
    snapshot = load_snapshot(Path(job.snapshot.meta_path))
    if snapshot.file_sha256 != job.snapshot.file_sha256 or snapshot.content_hash != job.snapshot.content_hash:
        raise DataError("snapshot differs from the one the run was started with", file=job.snapshot.meta_path)
    return snapshot


def train_base(job: StageJob, *, threads: int, device: str) -> dict[str, object]:
    """Train one base model of the run; returns its small JSON reference (the chord header result)."""
    if job.model is None:
        raise FarmError("train_base needs a model name")
    spec = get_spec(job.model)
    settings = get_settings()
    config = settings.load_config()
    registry = Registry.open()
    if registry.get_run(job.run_id).status in _ENDED:
        # The run failed already (another model's error): training this one would only litter.
        raise FarmError(f"run {job.run_id} has ended; not training {spec.name}")
    worker = socket.gethostname()
    registry.base_started(job.run_id, spec.name, spec.family, spec.effective_device(device), worker)
    started = time.perf_counter()
    try:
        result = train_base_model(
            load_run_snapshot(job),
            spec.name,
            run_dir(job.run_id),
            run_id=job.run_id,
            training=config.training,
            splits=config.splits,
            threads=threads,
            device=device,
            worker=worker,
        )
    except Exception as exc:
        registry.base_failed(job.run_id, spec.name, describe_failure(exc, config.training.task_time_limit))
        raise
    registry.base_finished(
        job.run_id, spec.name, seconds=time.perf_counter() - started, metrics=result.metrics
    )
    if registry.get_run(job.run_id).status in _ENDED:
        # The run failed while this model trained: its errback already cleaned up; do it again.
        shutil.rmtree(run_dir(job.run_id), ignore_errors=True)
    return result.to_json()


#: Celery's time-limit exceptions, recognised by name because this module never imports Celery.
_TIME_LIMIT_ERRORS = ("SoftTimeLimitExceeded", "TimeLimitExceeded")


def describe_failure(exc: BaseException, time_limit: str) -> str:
    """One line for the registry: what failed and why, "timed out" for a task time limit."""
    if type(exc).__name__ in _TIME_LIMIT_ERRORS:
        return f"timed out: the task time limit is {time_limit} (training.task_time_limit)"
    return f"{type(exc).__name__}: {exc}"


def stored_result(job: StageJob, model: str) -> dict[str, object] | None:
    """A base model's reference as its task wrote it to the run folder, if it finished."""
    path = result_path(run_dir(job.run_id), model)
    if not path.is_file():
        return None
    loaded: dict[str, object] = json.loads(path.read_text())
    return loaded


def collect_results(job: StageJob, results: Sequence[object]) -> dict[str, BaseModelResult]:
    """Each base model's result exactly once; models absent from ``results`` come from the run folder.

    A duplicated header task can fire the chord body before a model finished (the counter counts the
    duplicate): such a model is looked up where its task writes it; if it is not there yet the caller
    retries later. Conflicting duplicates are an error.
    """
    dicts = [r for r in results if isinstance(r, dict)]
    present = {r.get("model") for r in dicts}
    for model in MODEL_NAMES:
        if model not in present:
            stored = stored_result(job, model)
            if stored is not None:
                dicts.append(stored)
    indexed = one_result_per_model(dicts, MODEL_NAMES)
    return {model: BaseModelResult.from_json(data) for model, data in indexed.items()}


def train_meta(job: StageJob, results: Sequence[object], *, task_id: str, threads: int) -> str | None:
    """Run the meta stage once per run, then gate: promote or reject. Returns the version id.

    Returns None for a duplicate delivery. A redelivery after the version was registered (the task died
    before settling it, or Redis was down while announcing) settles it now instead.
    """
    from trainfarm.shared.training.meta_stage import build_version

    settings = get_settings()
    registry = Registry.open()
    run = registry.get_run(job.run_id)
    if run.status in _ENDED:
        if run.version is not None:
            settle(registry.get_version(run.version))
        finish(job)  # idempotent: frees the slot if this run still holds it
        return run.version
    client = redis_client(settings)
    try:
        if not claim_meta(client, job.run_id, task_id, slot_ttl_s(settings)):
            return None
    finally:
        client.close()
    base = collect_results(job, results)
    registry.set_run_status(job.run_id, "meta")
    champion = registry.get_champion(job.symbol_id(), job.tf().value)
    built = build_version(
        job,
        load_run_snapshot(job),
        base,
        run_dir(job.run_id),
        threads=threads,
        run_created_at=run.created_at,
        champion=_champion_loader(champion) if champion else None,
    )
    version = registry.add_version(
        built.version,
        job.symbol_id(),
        job.tf().value,
        job.run_id,
        metrics=built.metrics,
        path=str(built.path),
        manifest_sha256=built.manifest_sha256,
        gate_report=built.gate_report,
    )
    settle(version)
    finish(job)
    return built.version


def _champion_loader(champion: VersionRecord) -> Callable[[], Predictor]:
    """Load the champion only when the gates need it; a broken champion fails a gate, not the run."""

    def load() -> Predictor:
        return Predictor.load(Path(champion.path), expected_manifest_sha256=champion.manifest_sha256)

    return load


def settle(version: VersionRecord) -> None:
    """Act on a registered version's gate report: promote it (reason "gate") or reject it; then prune.

    Idempotent: a candidate is decided once; a champion is re-announced (its announcement may be the step
    that failed); a rejected or retired version is left as it is.
    """
    report = version.gate_report
    if version.status == "candidate":
        if report is not None and report.get("passed") is True:
            promote_version(version.version, PromotionReason.GATE, gate_report=report)
        else:
            reject_version(version.version, report or {"passed": False, "checks": []})
    elif version.status == "champion":
        reannounce(version.symbol, version.timeframe)
    prune(version.symbol, version.timeframe)


def finish(job: RunJob) -> None:
    """Free the run's slot and its staging folder (the pack holds copies of everything kept)."""
    client = redis_client()
    try:
        release_slot(client, job.symbol_id(), job.tf().value, job.run_id)
    finally:
        client.close()
    shutil.rmtree(run_dir(job.run_id), ignore_errors=True)


def fail(job: RunJob, error: str, *, model: str | None) -> None:
    """Record the run as failed (first error wins) and free its slot; no version is left behind.

    A chord error reaches the errback as the body's failure, without the model's name: the failed base
    model's own record (written by its task before it raised) then names the model and its error.
    """
    registry = Registry.open()
    if model is None:
        failed = sorted(
            (r for r in registry.base_results(job.run_id) if r.status == "failed"),
            key=lambda r: (r.finished_at is None, r.finished_at),
        )
        if failed:
            model, error = failed[0].model, failed[0].error or error
    registry.fail_run(job.run_id, error, failed_model=model)
    finish(job)
    # The registry holds the failure; the events stream is history, not the source of truth.
    with contextlib.suppress(TransientError):
        record_failure(registry.get_run(job.run_id))


__all__ = [
    "HeaderResultError",
    "Submitted",
    "abandon_run",
    "claim_run",
    "collect_results",
    "fail",
    "prepare",
    "train_base",
    "train_meta",
]
