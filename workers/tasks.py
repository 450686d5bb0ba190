"""Thin Celery tasks: parse the JSON payload, call :mod:`trainfarm.workers.stages`, return a small reference.

Only :class:`~trainfarm.shared.errors.TransientError` is retried (with exponential backoff and jitter); any
other error fails the task, which fails the chord, whose errback marks the run failed with the model and
the error. No task trains or loads a model at import time: the ML libraries load inside pool processes
only. No call site names a queue: :mod:`trainfarm.workers.routing` decides.
"""

from __future__ import annotations

import logging
import re
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from celery import Task, chord, group, signals
from celery.exceptions import ChordError, SoftTimeLimitExceeded
from kombu.exceptions import OperationalError as BrokerOperationalError
from pydantic import BaseModel, ConfigDict

from trainfarm.shared.champions.reconcile import reconcile
from trainfarm.shared.champions.shadow import reconcile_challengers
from trainfarm.shared.connections import redis_connection
from trainfarm.shared.data.store import open_store
from trainfarm.shared.data.sync import sync_all
from trainfarm.shared.errors import (
    BrokerUnavailableError,
    ConfigError,
    MissingHeaderResultError,
    PoisonMessageError,
    RunEndedError,
    StageTimeoutError,
    TransientError,
)
from trainfarm.shared.registry import Registry, RunKind
from trainfarm.shared.settings import get_settings
from trainfarm.shared.symbols import canonical_symbol
from trainfarm.shared.timeframes import parse_timeframe
from trainfarm.shared.zoo import MODEL_NAMES
from trainfarm.shared.zoo.threads import threads_per_task
from trainfarm.workers import holds, meta_runs, stages
from trainfarm.workers.celery_app import app
from trainfarm.workers.checks import (
    alert_channels,
    alert_delivery,
    outcome_ingest,
    shadow_check,
    trigger_check,
)
from trainfarm.workers.payloads import RunJob, StageJob, parse_payload
from trainfarm.workers.routing import (
    CHECK_SHADOW,
    CHECK_TRIGGERS,
    DELIVER_ALERTS,
    FAN_OUT_RETRAIN,
    INGEST_BARS,
    INGEST_OUTCOMES,
    META_REFIT,
    RECONCILE_CHAMPIONS,
)
from trainfarm.workers.runs import Submitted, claim_run, count_delivery

log = logging.getLogger(__name__)

#: Pool processes a worker runs; learned in the parent before it forks, inherited by the children.
_worker_concurrency = 1


@signals.worker_init.connect
def _remember_concurrency(sender: Any = None, **_: Any) -> None:
    global _worker_concurrency  # noqa: PLW0603 - set once per worker, before the pool forks
    concurrency = getattr(sender, "concurrency", None)
    if isinstance(concurrency, int) and concurrency > 0:
        _worker_concurrency = concurrency


class FarmTask(Task):  # type: ignore[misc]
    """Base of the farm's tasks: retries transient errors only, caps redeliveries."""

    autoretry_for = (TransientError,)
    retry_backoff = 5
    retry_backoff_max = 300
    retry_jitter = True
    max_retries = 5
    acks_late = True
    reject_on_worker_lost = True

    def guard_delivery(self) -> None:
        """Fail for good when this task id keeps coming back (e.g. it OOM-kills every worker)."""
        settings = get_settings()
        if self.request.retries:  # a deliberate retry is not a redelivery
            return
        with redis_connection(settings) as client:
            deliveries = count_delivery(client, self.request.id, ttl_s=7 * 86400)
        if deliveries > settings.max_deliveries:
            raise PoisonMessageError(
                f"task {self.request.id} was delivered {deliveries} times (limit {settings.max_deliveries}); "
                "its worker probably died each time"
            )


def task_threads() -> int:
    """Threads per training task: configured, else this worker's share of the machine's cores."""
    return get_settings().worker_threads or threads_per_task(_worker_concurrency)


def device_of(task: Task) -> str:
    """GPU workers consume the 'gpu' queue: a task delivered from it trains on the GPU."""
    info = task.request.delivery_info or {}
    return "cuda" if info.get("routing_key") == "gpu" else "cpu"


@app.task(bind=True, base=FarmTask, name="farm.prepare_run")
def prepare_run(self: FarmTask, payload: dict[str, Any]) -> dict[str, Any]:
    """Build the run's dataset snapshot, then fan out chord(train_base x 8, train_meta)."""
    job = parse_payload(RunJob, payload, task="farm.prepare_run")
    try:
        self.guard_delivery()
        stage = stages.prepare(job)
    except TransientError:
        raise
    except Exception as exc:
        stages.fail(job, f"{type(exc).__name__}: {exc}", model=None)
        raise
    if stage is None:  # a duplicate delivery: the chord of this run is under way, or the run has ended
        return {"run_id": job.run_id, "duplicate": True}
    # Launch first, then record it: a prepare that dies in between is redelivered and launches again.
    launch_chord(stage)
    stages.launched(stage)
    return stage.model_dump(mode="json")


def launch_chord(stage: StageJob) -> None:
    """chord(group(train_base for each model), train_meta), with run_failed as errback.

    Every id is deterministic (``<run>-<model>``, ``<run>-header``, ``<run>-meta``), so a duplicate of any
    message is recognisable as one, and the reaper finds a run's messages by its id.
    """
    payload = stage.model_dump(mode="json")
    header = group(
        [
            train_base.signature(args=({**payload, "model": model},), task_id=f"{stage.run_id}-{model}")
            for model in MODEL_NAMES
        ]
    ).set(task_id=f"{stage.run_id}-header")
    body = train_meta.signature(args=(payload,), task_id=f"{stage.run_id}-meta")
    errback = run_failed.signature(args=(payload,))
    chord(header, body).on_error(errback).apply_async()


@app.task(bind=True, base=FarmTask, name="farm.train_base")
def train_base(self: FarmTask, payload: dict[str, Any]) -> dict[str, object]:
    """Train one base model; returns its deterministic JSON reference."""
    job = parse_payload(StageJob, payload, task="farm.train_base")
    try:
        self.guard_delivery()
    except PoisonMessageError as exc:
        stages.poisoned(job, str(exc))  # the run's failure then names the model that kept dying
        raise
    try:
        return stages.train_base(
            job,
            threads=task_threads(),
            device=device_of(self),
            time_limit_errors=(SoftTimeLimitExceeded,),
            worker=self.request.hostname,
        )
    except SoftTimeLimitExceeded:
        limit = get_settings().load_config().training.task_time_limit
        raise StageTimeoutError(f"base model {job.model} {stages.timed_out(limit)}") from None


@app.task(bind=True, base=FarmTask, name="farm.train_meta", max_retries=40)
def train_meta(self: FarmTask, results: list[Any], payload: dict[str, Any]) -> dict[str, Any]:
    """The chord body: stack, train the meta-learner, calibrate, evaluate, write the pack, register."""
    job = parse_payload(StageJob, payload, task="farm.train_meta")
    self.guard_delivery()
    try:
        version = stages.train_meta(job, results, task_id=self.request.id, threads=task_threads())
    except MissingHeaderResultError as exc:
        if self.request.retries < self.max_retries:
            # Fired early by a duplicated header task: wait for the model still training.
            raise self.retry(countdown=15, exc=exc) from exc
        raise
    return {"run_id": job.run_id, "version": version}


@app.task(name="farm.run_failed")
def run_failed(request: Any, exc: BaseException, traceback: Any, payload: dict[str, Any]) -> None:
    """Errback of the chord: record the failure (model and error) once; a late task's complaint is ignored."""
    if isinstance(exc, RunEndedError):
        return
    job = parse_payload(StageJob, payload, task="farm.run_failed")
    model: str | None = None
    args = getattr(request, "args", None) or ()
    if args and isinstance(args[0], dict) and isinstance(args[0].get("model"), str):
        model = args[0]["model"]
    error = f"{type(exc).__name__}: {exc}"
    cancelled = _cancelled_base_model(job, exc)
    if cancelled is not None:
        model, error = cancelled
    if stages.fail(job, error, model=model):
        log.warning("run %s failed (model %s): %s", job.run_id, model, error)


#: How a chord names a header task its worker terminated: "Dependency <id> raised TaskRevokedError(..)".
_REVOKED_DEPENDENCY = re.compile(r"Dependency (\S+) raised TaskRevokedError\('?([\w ]*)'?\)")


def _cancelled_base_model(job: StageJob, exc: BaseException) -> tuple[str, str] | None:
    """(model, error) when the chord failed because a worker cancelled a base model's running task.

    Workers cancel their running tasks when they lose Redis (``worker_cancel_long_running_tasks_on_
    connection_loss``, so that a restored message is not run twice at once); Celery then fails the chord
    with a ChordError that names only a task id. Said plainly instead: which model, why, what to do.
    """
    found = _REVOKED_DEPENDENCY.search(str(exc)) if isinstance(exc, ChordError) else None
    if found is None or not found.group(1).startswith(f"{job.run_id}-"):
        return None
    model = found.group(1).removeprefix(f"{job.run_id}-")
    return model, (
        f"the task training {model} was {found.group(2) or 'revoked'} by its worker (workers cancel their "
        "running tasks when they lose the connection to Redis, and the run cannot be joined after that); "
        f"nothing was promoted: retrain again (farm retrain {job.symbol} -t {job.timeframe} --force)"
    )


def submit_retrain(
    symbol: str, timeframe: str, reason: str, *, kind: RunKind = RunKind.FULL, hold: bool = True
) -> Submitted:
    """Claim the market's active run and enqueue it; a trigger that finds one under way gets that one.

    The config file is validated before anything is claimed (:class:`ConfigError` naming the key).
    A market whose retrains are held back (:mod:`.holds`: stale data, data that cannot train) asks for no
    run unless ``hold=False`` (a person's forced retrain); nor does a meta-only request
    (``kind=RunKind.META``) that is not due (no champion, too few new bars): the answer is ``skipped``
    with the reason.
    """
    # The config first: a file the workers would refuse (unknown key or model, impossible value) must not
    # leave a claimed run and a queued message behind; the submitter hears about it now instead.
    config = get_settings().load_config()
    if hold:
        market_tf = parse_timeframe(timeframe)
        held = holds.hold_of(Registry.open(), open_store(), config, symbol, market_tf, datetime.now(UTC))
        if held is not None:
            return Submitted(
                "", canonical_symbol(symbol), market_tf.value, merged=False, kind=kind, skipped=held.line()
            )
    if kind is RunKind.META:
        skip = meta_runs.skip_reason(Registry.open(), config, symbol, timeframe)
        if skip is not None:
            tf = parse_timeframe(timeframe).value
            return Submitted("", canonical_symbol(symbol), tf, merged=False, kind=kind, skipped=skip)
        reason = meta_runs.meta_reason(reason)
    submitted = claim_run(symbol, timeframe, reason, kind=kind)
    if submitted.merged:
        return submitted
    job = RunJob(run_id=submitted.run_id, symbol=submitted.symbol, timeframe=submitted.timeframe)
    task, suffix = (meta_refit, "metaonly") if kind is RunKind.META else (prepare_run, "prepare")
    try:
        # ignore_result: the registry tracks the run; without it, a long-lived submitter (beat, a bot's
        # trigger) would keep a result subscription open per run it ever enqueued.
        task.apply_async(
            args=(job.model_dump(mode="json"),), task_id=f"{submitted.run_id}-{suffix}", ignore_result=True
        )
    except BrokerOperationalError as exc:  # broker down: the run must not stay 'queued' forever
        stages.abandon_run(job, f"could not enqueue: {exc}")
        raise BrokerUnavailableError(f"could not enqueue the run of {symbol} {timeframe}: {exc}") from exc
    return submitted


@app.task(bind=True, base=FarmTask, name=META_REFIT)
def meta_refit(self: FarmTask, payload: dict[str, Any]) -> dict[str, Any]:
    """A meta-only run: the champion's base models kept, stacker and calibration refit on newer bars."""
    job = parse_payload(RunJob, payload, task=META_REFIT)
    try:
        self.guard_delivery()
        version = meta_runs.run_meta(job, task_id=self.request.id, threads=task_threads())
    except TransientError:
        raise
    except Exception as exc:
        stages.fail(job, f"{type(exc).__name__}: {exc}", model=None)
        _full_retrain_after(job)
        raise
    _full_retrain_after(job)
    return {"run_id": job.run_id, "version": version}


def _full_retrain_after(job: RunJob) -> None:
    """Submit the full retrains that merged into an ended meta-only run (see :mod:`.meta_runs`)."""
    run = Registry.open().runs.get(job.run_id)
    wanted = meta_runs.full_reasons(run) if run.status.terminal else []
    if wanted:
        reason = f"after meta-only run {run.id[:8]}: {', '.join(wanted)}"
        follow = submit_retrain(run.symbol, run.timeframe, reason)
        log.info("meta-only run %s ended; full retrain %s asked by %s", run.id[:8], follow.run_id[:8], wanted)


class FanOut(BaseModel):
    """Payload of ``farm.fan_out_retrain``: which timeframe, why (recorded on every run), and which kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timeframe: str
    reason: str = "schedule"
    kind: RunKind = RunKind.FULL


@app.task(base=FarmTask, name=FAN_OUT_RETRAIN)
def fan_out_retrain(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Beat's retrain entries: one run per symbol of the universe at ``payload["timeframe"]``."""
    job = parse_payload(FanOut, payload, task=FAN_OUT_RETRAIN)
    return [asdict(s) for s in fan_out(job.timeframe, job.reason, kind=job.kind)]


def fan_out(timeframe: str, reason: str, *, kind: RunKind = RunKind.FULL) -> list[Submitted]:
    """Submit a retrain of every universe symbol at ``timeframe``; a market with a run under way merges."""
    tf = parse_timeframe(timeframe)
    config = get_settings().load_config()
    if tf not in config.universe.timeframes:
        raise ConfigError(f"timeframe {tf} is not in the universe ({', '.join(config.universe.timeframes)})")
    submitted = [submit_retrain(symbol, tf.value, reason, kind=kind) for symbol in config.universe.symbols]
    log.info(
        "fan-out %s %s (%s): %s",
        kind,
        tf,
        reason,
        ", ".join(
            f"{s.symbol} skipped ({s.skipped})"
            if s.skipped
            else f"{s.symbol} {'merged into' if s.merged else 'run'} {s.run_id[:8]}"
            for s in submitted
        ),
    )
    return submitted


@app.task(base=FarmTask, name=CHECK_TRIGGERS)
def check_triggers() -> list[dict[str, Any]]:
    """Beat's trigger check: fire every due policy once per cooldown
    (:mod:`trainfarm.workers.checks.trigger_check`)."""
    settings = get_settings()
    with redis_connection(settings) as client:
        fired = trigger_check.check(Registry.open(), settings.load_config(), client, submit_retrain)
    for f in fired:
        log.info("trigger %s fired for %s %s: run %s", f.policy, f.symbol, f.timeframe, f.run_id[:8])
    return [asdict(f) for f in fired]


@app.task(base=FarmTask, name=INGEST_OUTCOMES)
def ingest_outcomes() -> dict[str, Any]:
    """Beat's outcome ingestion: the bots' outcome stream into the registry, once per signal."""
    with redis_connection(get_settings()) as client:
        report = outcome_ingest.ingest(client, Registry.open())
    return asdict(report)


@app.task(base=FarmTask, name=INGEST_BARS)
def ingest_bars() -> list[dict[str, Any]]:
    """Beat's bar sync: new closed bars from each symbol's source into the store (:mod:`.sync`). A source
    that fails is reported and tried again at the next sync, never retried here."""
    settings = get_settings()
    reports = sync_all(open_store(settings), settings.load_config())
    for report in reports:
        (log.info if report.ok else log.warning)("bar sync: %s", report.line())
    return [report.to_json() for report in reports]


@app.task(base=FarmTask, name=DELIVER_ALERTS)
def deliver_alerts() -> dict[str, Any]:
    """Beat's alert delivery: new events and stale bots into the outbox, due alerts out (:mod:`.alerts`)."""
    settings = get_settings()
    config = settings.load_config().alerts
    with redis_connection(settings) as client:
        report = alert_delivery.run_alerts(client, config, alert_channels.channels(config, settings))
    return asdict(report)


@app.task(base=FarmTask, name=CHECK_SHADOW)
def check_shadow() -> dict[str, Any]:
    """Beat's shadow check: the bots' paired scores in, then each challenger decided once it can be."""
    settings = get_settings()
    with redis_connection(settings) as client:
        ingested, report = shadow_check.run(Registry.open(), client, settings)
    return {"ingested": asdict(ingested), **asdict(report)}


@app.task(base=FarmTask, name=RECONCILE_CHAMPIONS)
def reconcile_champions() -> list[dict[str, Any]]:
    """Beat's reconciliation: re-announce champions whose pointer or key lags the registry, and set the
    challenger keys the registry's active challengers should have."""
    settings = get_settings()
    with redis_connection(settings) as client:
        registry = Registry.open()
        repairs = reconcile(registry, client, settings)
        for version in reconcile_challengers(registry, client, settings):
            log.warning("challenger %s: its Redis key was missing or stale; announced again", version)
    for r in repairs:
        log.warning(
            "%s %s: pointer said %s, Redis said %s; re-announced champion %s",
            r.symbol, r.timeframe, r.pointer, r.key, r.version,
        )  # fmt: skip
    return [asdict(r) for r in repairs]
