"""The stages of one retrain run as plain functions, which the tasks (:mod:`~trainfarm.workers.tasks`) call.

submit (:func:`trainfarm.workers.runs.claim_run`) -> :func:`prepare` (dataset snapshot) -> the task
launches chord(train_base x 8, train_meta) -> :func:`launched` -> :func:`train_base` x 8 ->
:func:`train_meta`, with :func:`fail` as the errback. Every stage records what it did in the registry, so
the CLI, Flower and the registry tell the same story, and every stage is safe to run twice (Celery
delivers at least once):

* a run moves to ``training`` only after its chord was launched, so a prepare task that dies before the
  launch is redelivered and launches it (task ids are deterministic, so a second launch after a death
  between the launch and :func:`launched` only duplicates messages that the later stages fold);
* every stage checks the config hash pinned at prepare time (:class:`ConfigMismatchError` otherwise);
* a run's failure is recorded and announced once, whoever reports it first.
"""

from __future__ import annotations

import json
import logging
import shutil
import socket
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from trainfarm.shared.champions.publish import promote_version, prune, reannounce, reject_version
from trainfarm.shared.champions.shadow import start_challenger
from trainfarm.shared.connections import redis_connection
from trainfarm.shared.data.store import open_store
from trainfarm.shared.dataset.snapshot import DatasetSnapshot, load_snapshot, snapshot_from_store
from trainfarm.shared.errors import ConfigMismatchError, DataError, FarmError, RunEndedError
from trainfarm.shared.evaluation.gates import ChampionStanding, Lineage
from trainfarm.shared.evaluation.repeat_checks import PreviousJudgement
from trainfarm.shared.packs.predictor import Predictor
from trainfarm.shared.registry import PromotionReason, Registry, RunStatus, VersionRecord
from trainfarm.shared.settings import get_settings
from trainfarm.shared.timeframes import Timeframe, format_duration
from trainfarm.shared.training.base import BaseModelResult, result_path, train_base_model
from trainfarm.shared.zoo import MODEL_NAMES, get_spec
from trainfarm.workers.payloads import RunJob, SnapshotRef, StageJob

if TYPE_CHECKING:  # the meta stage imports the ML libraries: loaded when a meta stage runs, not here
    from trainfarm.shared.training.meta_stage import BuiltVersion
from trainfarm.workers.runs import (
    claim_meta,
    one_result_per_model,
    record_run_failure,
    run_dir,
)

#: Once a run is here its chord exists: preparing again would launch a second one.
_LAUNCHED = (RunStatus.TRAINING, RunStatus.META)

log = logging.getLogger(__name__)


def abandon_run(job: RunJob, error: str) -> None:
    """Mark a run failed before any task ran (enqueueing it failed)."""
    record_run_failure(job.run_id, error, failed_model=None)


def prepare(job: RunJob) -> StageJob | None:
    """Build (or reuse) the run's dataset snapshot and pin its config; the caller then launches the chord.

    Returns None when the run's chord was launched already (a duplicate delivery of the prepare task) or
    the run has ended. The run stays ``preparing`` until :func:`launched`.
    """
    settings = get_settings()
    config = settings.load_config()
    registry = Registry.open()
    run = registry.runs.get(job.run_id)
    if run.status.terminal or run.status in _LAUNCHED:
        return None
    registry.runs.set_status(job.run_id, RunStatus.PREPARING)
    snapshot = snapshot_from_store(
        open_store(), symbol=job.symbol, timeframe=job.timeframe, config=config, root=settings.datasets_dir
    )
    config_hash = config.config_hash()
    registry.runs.set_status(
        job.run_id,
        RunStatus.PREPARING,
        snapshot_hash=snapshot.content_hash,
        snapshot_path=snapshot.path,
        config_hash=config_hash,
    )
    ref = SnapshotRef.of(
        Path(snapshot.path).with_suffix(".json"),
        settings.artifacts_dir,
        file_sha256=snapshot.file_sha256,
        content_hash=snapshot.content_hash,
    )
    return StageJob(
        run_id=job.run_id,
        symbol=job.symbol,
        timeframe=job.timeframe.value,
        snapshot=ref,
        config_hash=config_hash,
    )


def launched(job: StageJob) -> bool:
    """Record that the run's chord is under way (``training``); False when the run has ended meanwhile."""
    return Registry.open().runs.set_status(job.run_id, RunStatus.TRAINING)


def check_config(job: StageJob) -> None:
    """Refuse to work on a run prepared with another config than this worker's."""
    check_config_hash(job.config_hash, f"run {job.run_id} was prepared")


def check_config_hash(pinned: str, subject: str) -> None:
    """Refuse work pinned to another config than this worker's; ``subject`` says what pinned it."""
    mine = get_settings().load_config().config_hash()
    if mine != pinned:
        raise ConfigMismatchError(
            f"{subject} with config {pinned[:12]}, but this worker's config hashes to {mine[:12]}: every "
            "worker of a farm must read the same config file (FARM_CONFIG_FILE)"
        )


def load_run_snapshot(job: StageJob) -> DatasetSnapshot:
    """The snapshot a stage job names, refusing one whose recorded hash differs from the job's."""
    return load_snapshot_ref(job.snapshot, "the run was started with")


def load_snapshot_ref(ref: SnapshotRef, started: str) -> DatasetSnapshot:
    """The snapshot ``ref`` names, refusing one whose recorded hashes differ from the reference's.

    ``started`` completes "snapshot differs from the one ..." in the error.
    """
    meta_path = ref.resolve(get_settings().artifacts_dir)
    snapshot = load_snapshot(meta_path)
    if snapshot.file_sha256 != ref.file_sha256 or snapshot.content_hash != ref.content_hash:
        raise DataError(f"snapshot differs from the one {started}", file=str(meta_path))
    return snapshot


def train_base(
    job: StageJob,
    *,
    threads: int,
    device: str,
    time_limit_errors: tuple[type[BaseException], ...] = (),
    worker: str | None = None,
) -> dict[str, object]:
    """Train one base model of the run; returns its small JSON reference (the chord header result).

    ``time_limit_errors`` are the exception types that mean "the task ran out of time" (the task passes
    Celery's soft time limit): such a failure is recorded as "timed out", naming the configured limit.
    """
    if job.model is None:
        raise FarmError("train_base needs a model name")
    spec = get_spec(job.model)
    check_config(job)
    settings = get_settings()
    config = settings.load_config()
    registry = Registry.open()
    if registry.runs.get(job.run_id).status.terminal:
        # The run ended already (another model's error): training this one would only litter.
        raise RunEndedError(f"run {job.run_id} has ended; not training {spec.name}")
    # The Celery node name (``name@host``) when a task passes it: two workers on one host stay apart.
    worker = worker or socket.gethostname()
    registry.runs.base_started(job.run_id, spec.name, spec.family, spec.effective_device(device), worker)
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
    except time_limit_errors:
        registry.runs.base_failed(job.run_id, spec.name, timed_out(config.training.task_time_limit))
        raise
    except Exception as exc:
        registry.runs.base_failed(job.run_id, spec.name, f"{type(exc).__name__}: {exc}")
        raise
    registry.runs.base_finished(
        job.run_id, spec.name, seconds=time.perf_counter() - started, metrics=result.metrics
    )
    if registry.runs.get(job.run_id).status.terminal:
        # The run failed while this model trained: its failure freed the staging folder; do it again.
        remove_staging(job.run_id)
    return result.to_json()


def poisoned(job: StageJob, error: str) -> None:
    """Record that a base model's task was given up (it killed its worker on every delivery)."""
    if job.model is not None:
        Registry.open().runs.base_failed(job.run_id, job.model, error)


def timed_out(limit: timedelta) -> str:
    """How a task that ran out of time is described, naming the configured limit."""
    return f"timed out: the task time limit is {format_duration(limit)} (training.task_time_limit)"


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
    duplicate): such a model is looked up where its task writes it; if it is not there yet,
    :class:`MissingHeaderResultError` tells the caller to retry later. Conflicting duplicates are a
    :class:`HeaderResultError`.
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


def meta_guard_ttl_s() -> int:
    """How long the meta guard of a run is kept: well past the longest a meta task may be retried."""
    return 4 * get_settings().load_config().training.task_time_limit_s + 86400


def train_meta(job: StageJob, results: Sequence[object], *, task_id: str, threads: int) -> str | None:
    """Run the meta stage once per run, then gate: promote or reject. Returns the version id.

    Returns None for a duplicate delivery. A redelivery after the version was registered (the task died
    before settling it, or Redis was down while announcing) settles it now instead.
    """
    from trainfarm.shared.training.meta_stage import build_version

    check_config(job)
    registry = Registry.open()
    run = registry.runs.get(job.run_id)
    if run.status.terminal:
        if run.version is not None:
            # A redelivery after the version was registered: finish what the dead task left undone.
            settle(registry.versions.get(run.version))
            remove_staging(job.run_id)
        return run.version
    with redis_connection() as client:
        if not claim_meta(client, job.run_id, task_id, meta_guard_ttl_s()):
            return None
    base = collect_results(job, results)
    registry.runs.set_status(job.run_id, RunStatus.META)
    champion = registry.champions.get(job.symbol, job.timeframe.value)
    built = build_version(
        job,
        load_run_snapshot(job),
        base,
        run_dir(job.run_id),
        threads=threads,
        run_created_at=run.created_at,
        champion=_champion_loader(champion) if champion else None,
        standing=champion_standing(champion, run.reasons) if champion else None,
        lineage=market_lineage(registry, job.symbol, job.timeframe),
    )
    return register_built(registry, job, built)


def register_built(registry: Registry, job: RunJob, built: BuiltVersion) -> str:
    """Register a run's written pack (the run succeeds), settle it (promote or reject), free its staging.

    The last step of a full run's meta stage and of a meta-only run alike; returns the version id.
    """
    version = registry.versions.add(
        built.version,
        job.symbol,
        job.timeframe.value,
        job.run_id,
        metrics=built.metrics,
        path=str(built.path),
        manifest_sha256=built.manifest_sha256,
        gate_report=built.gate_report,
    )
    settle(version)
    remove_staging(job.run_id)
    return built.version


def champion_standing(champion: VersionRecord, reasons: list[str]) -> ChampionStanding:
    """The champion's age now, its timeframe's freshness limit, and the live triggers among ``reasons``
    (a run's): what may let a candidate replace it without a comparison."""
    params = get_settings().load_config().params(Timeframe(champion.timeframe))
    age = datetime.now(UTC) - champion.created_at
    return ChampionStanding.from_reasons(age, params.freshness_limit, reasons)


#: Versions of a market read at first when looking for its previous judged candidate.
LINEAGE_BATCH = 20


def market_lineage(registry: Registry, symbol: str, timeframe: Timeframe) -> Lineage:
    """The market's previous judged candidate (its newest version with a gate report), for the gates'
    ``confirmed`` check; None inside when the market has none (this candidate is its first)."""
    market = f"{symbol} {timeframe}"
    # Nearly every version has a report (a run's pack always does): the newest few are read first.
    for limit in (LINEAGE_BATCH, None):
        for version in registry.versions.of_market(symbol, timeframe, limit=limit):
            if version.gate_report is not None:
                return Lineage(market, PreviousJudgement.of_report(version.version, version.gate_report))
    return Lineage(market)


def _champion_loader(champion: VersionRecord) -> Callable[[], Predictor]:
    """Load the champion only when the gates need it; a broken champion fails a gate, not the run."""

    def load() -> Predictor:
        return Predictor.load(Path(champion.path), expected_manifest_sha256=champion.manifest_sha256)

    return load


def settle(version: VersionRecord) -> None:
    """Act on a registered version's gate report: promote it (reason "gate") or reject it; then prune.

    Under ``[timeframes.<tf>.promotion] mode = "shadow"`` a passing candidate of a market that has a
    champion becomes its challenger instead (:mod:`trainfarm.shared.champions.shadow`), or waits as a
    candidate while another challenger is being scored; the shadow check decides it later.

    Idempotent: a candidate is decided once (a challenger re-announced); a champion is re-announced (its
    announcement may be the step that failed); a rejected or retired version is left as it is.
    """
    report = version.gate_report
    if version.status == "candidate":
        if report is not None and report.get("passed") is True:
            _pass(version, report)
        else:
            reject_version(version.version, report or {"passed": False, "checks": []})
    elif version.status == "champion":
        reannounce(version.symbol, version.timeframe)
    prune(version.symbol, version.timeframe)


def _pass(version: VersionRecord, report: dict[str, object]) -> None:
    """A candidate that passed the gates: promoted, or (shadow mode) made or kept waiting as challenger."""
    params = get_settings().load_config().params(Timeframe(version.timeframe))
    registry = Registry.open()
    sym, tf = version.symbol, version.timeframe
    if params.promotion.mode == "shadow" and registry.champions.get(sym, tf) is not None:
        active = registry.shadows.active(sym, tf)
        if active is None or active.version == version.version:
            start_challenger(version.version, started_by="gate", registry=registry)
        else:
            log.info("%s %s: %s passed and waits for challenger %s's decision", sym, tf, version.version,
                     active.version)  # fmt: skip
        return
    promote_version(version.version, PromotionReason.GATE, gate_report=report)


def remove_staging(run_id: str) -> None:
    """Free the run's staging folder (the pack holds copies of everything kept)."""
    shutil.rmtree(run_dir(run_id), ignore_errors=True)


def fail(job: RunJob, error: str, *, model: str | None) -> bool:
    """Record the run as failed and announce it, once: True for the call that did (first error wins).

    A chord error reaches the errback as the body's failure, without the model's name: the failed base
    model's own record (written by its task before it raised) then names the model and its error. A run
    that has ended (it succeeded, or another report came first) is left alone and nothing is announced.
    """
    registry = Registry.open()
    if registry.runs.get(job.run_id).status.terminal:
        return False
    if model is None:
        failed = sorted(
            (r for r in registry.runs.base_results(job.run_id) if r.status == "failed"),
            key=lambda r: (r.finished_at is None, r.finished_at),
        )
        if failed:
            model, error = failed[0].model, failed[0].error or error
    return record_run_failure(job.run_id, error, failed_model=model, registry=registry)


__all__ = [
    "abandon_run",
    "check_config",
    "check_config_hash",
    "collect_results",
    "fail",
    "launched",
    "load_snapshot_ref",
    "poisoned",
    "prepare",
    "register_built",
    "remove_staging",
    "settle",
    "train_base",
    "train_meta",
]
