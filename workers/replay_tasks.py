"""Thin Celery tasks of a replay's points: parse the payload, call :mod:`trainfarm.workers.replay_points`.

One point travels as a live run does: ``farm.replay_prepare`` (the causal snapshot) launches
chord(``farm.replay_base`` x 8, ``farm.replay_meta``), with ``farm.replay_failed`` as errback. Task ids
start with the point's id (``<replay>-<idx>``), so the driver asks the broker whether a point is still
under way before it submits it again (:func:`trainfarm.workers.runs.broker_holds_run`).
"""

from __future__ import annotations

import logging
from typing import Any

from celery import chord, group
from celery.exceptions import SoftTimeLimitExceeded

from trainfarm.shared.errors import StageTimeoutError, TransientError
from trainfarm.shared.settings import get_settings
from trainfarm.shared.zoo import MODEL_NAMES
from trainfarm.workers import replay_points
from trainfarm.workers.celery_app import app
from trainfarm.workers.payloads import ReplayJob, ReplayStageJob, parse_payload
from trainfarm.workers.routing import REPLAY_BASE, REPLAY_FAILED, REPLAY_META, REPLAY_PREPARE
from trainfarm.workers.stages import timed_out
from trainfarm.workers.tasks import FarmTask, device_of, task_threads

log = logging.getLogger(__name__)


def submit_point(job: ReplayJob) -> None:
    """Enqueue the training of one replay point (``farm.replay_prepare``)."""
    replay_prepare.apply_async(
        args=(job.model_dump(mode="json"),), task_id=f"{job.run_id}-prepare", ignore_result=True
    )


@app.task(bind=True, base=FarmTask, name=REPLAY_PREPARE)
def replay_prepare(self: FarmTask, payload: dict[str, Any]) -> dict[str, Any]:
    """Build the point's causal snapshot, then fan out chord(replay_base x 8, replay_meta)."""
    job = parse_payload(ReplayJob, payload, task=REPLAY_PREPARE)
    try:
        self.guard_delivery()
        stage = replay_points.prepare(job)
    except TransientError:
        raise
    except Exception as exc:
        replay_points.fail(job, f"{type(exc).__name__}: {exc}")
        raise
    if stage is None:  # trained already (a resumed replay's duplicate)
        return {"point": job.run_id, "duplicate": True}
    data = stage.model_dump(mode="json")
    header = group(
        [
            replay_base.signature(args=({**data, "model": model},), task_id=f"{job.run_id}-{model}")
            for model in MODEL_NAMES
        ]
    ).set(task_id=f"{job.run_id}-header")
    body = replay_meta.signature(args=(data,), task_id=f"{job.run_id}-meta")
    chord(header, body).on_error(replay_failed.signature(args=(data,))).apply_async()
    return {"point": job.run_id}


@app.task(bind=True, base=FarmTask, name=REPLAY_BASE)
def replay_base(self: FarmTask, payload: dict[str, Any]) -> dict[str, object]:
    """Train one base model of a replay point; returns its JSON reference."""
    job = parse_payload(ReplayStageJob, payload, task=REPLAY_BASE)
    self.guard_delivery()
    try:
        return replay_points.train_base(
            job, threads=task_threads(), device=device_of(self), worker=self.request.hostname
        )
    except SoftTimeLimitExceeded:
        limit = get_settings().load_config().training.task_time_limit
        raise StageTimeoutError(f"base model {job.model} {timed_out(limit)}") from None


@app.task(bind=True, base=FarmTask, name=REPLAY_META)
def replay_meta(self: FarmTask, results: list[Any], payload: dict[str, Any]) -> dict[str, Any]:
    """The chord body: stack, calibrate, choose p*, refit, write the point's pack and keep its candidate."""
    job = parse_payload(ReplayStageJob, payload, task=REPLAY_META)
    self.guard_delivery()
    version = replay_points.train_meta(job, results, threads=task_threads())
    return {"point": job.run_id, "version": version}


@app.task(name=REPLAY_FAILED)
def replay_failed(request: Any, exc: BaseException, traceback: Any, payload: dict[str, Any]) -> None:
    """Errback of a point's chord: record the point's failure (the driver fails the replay, naming it)."""
    job = parse_payload(ReplayStageJob, payload, task=REPLAY_FAILED)
    args = getattr(request, "args", None) or ()
    model = args[0].get("model") if args and isinstance(args[0], dict) else None
    where = f" (base model {model})" if isinstance(model, str) else ""
    replay_points.fail(job, f"{type(exc).__name__}{where}: {exc}")
    log.warning("replay point %s failed%s: %s", job.run_id, where, exc)
