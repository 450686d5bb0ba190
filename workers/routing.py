"""Which Celery queue each task goes to: one router, fed by each model's declared device.

Call sites never name a queue. Celery asks :func:`route_task` for every message it sends (the chord
header, the chord body a worker fires, retries), so a task's queue is decided here and only here:

* ``farm.train_base`` and a replay point's ``farm.replay_base``: ``gpu`` for a model declared
  ``gpu_capable`` when the farm has GPU workers (``FARM_GPU_WORKERS``), else ``cpu``;
* ``farm.train_meta``, ``farm.meta_refit`` (a meta-only run) and ``farm.replay_meta``: ``meta``, a small
  queue of its own, so that a long backlog of base models never delays a meta stage that would finish a run;
* everything else (``farm.prepare_run``, control tasks): ``control``.

Celery-free (a router is a plain function), so it is tested without Celery.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from trainfarm.shared.errors import ConfigError
from trainfarm.shared.settings import get_settings
from trainfarm.shared.zoo import ModelSpec, get_spec

#: Every queue of the farm. Workers consume cpu, meta and control by default; GPU workers consume gpu.
QUEUES = ("cpu", "gpu", "meta", "control")
DEFAULT_QUEUE = "control"

TRAIN_BASE = "farm.train_base"
TRAIN_META = "farm.train_meta"
#: A meta-only run (:mod:`trainfarm.workers.meta_runs`): one task on the ``meta`` queue, like a meta stage.
META_REFIT = "farm.meta_refit"
#: A replay point's tasks (:mod:`trainfarm.workers.replay_tasks`): base models and the meta stage go where
#: a live run's go; preparing and the errback to ``control``.
REPLAY_PREPARE = "farm.replay_prepare"
REPLAY_BASE = "farm.replay_base"
REPLAY_META = "farm.replay_meta"
REPLAY_FAILED = "farm.replay_failed"
#: Beat's full-retrain entries send this task (:mod:`trainfarm.beat.schedule`); queue ``control``.
FAN_OUT_RETRAIN = "farm.fan_out_retrain"
#: Beat's trigger-check entry sends this task; queue ``control``.
CHECK_TRIGGERS = "farm.check_triggers"
#: Beat's outcome-ingestion entry sends this task; queue ``control``.
INGEST_OUTCOMES = "farm.ingest_outcomes"
#: Beat's bar-ingestion entry sends this task (new bars from each symbol's source); queue ``control``.
INGEST_BARS = "farm.ingest_bars"
#: Beat's alert-delivery entry sends this task; queue ``control``.
DELIVER_ALERTS = "farm.deliver_alerts"
#: Beat's reconciliation entry sends this task; queue ``control``.
RECONCILE_CHAMPIONS = "farm.reconcile_champions"
#: Beat's shadow-check entry sends this task (the bots' paired scores in, challengers decided); ``control``.
CHECK_SHADOW = "farm.check_shadow"


def queue_for_model(spec: ModelSpec, *, gpu_workers: bool) -> str:
    """The queue of one base model: ``gpu`` when it can use a GPU and the farm has GPU workers."""
    return "gpu" if spec.gpu_capable and gpu_workers else "cpu"


def queue_for_task(name: str, payload: Mapping[str, Any] | None, *, gpu_workers: bool) -> str:
    """The queue of a task named ``name`` whose first argument is ``payload``."""
    if name in (TRAIN_BASE, REPLAY_BASE):
        model = payload.get("model") if payload is not None else None
        try:
            spec = get_spec(model) if isinstance(model, str) else None
        except ConfigError:
            spec = None
        if spec is None:
            # A malformed payload still needs a queue: the task itself refuses it with a clear error.
            return "cpu"
        return queue_for_model(spec, gpu_workers=gpu_workers)
    if name in (TRAIN_META, META_REFIT, REPLAY_META):
        return "meta"
    return DEFAULT_QUEUE


def route_task(
    name: str, args: Sequence[Any], kwargs: Mapping[str, Any], options: Mapping[str, Any], **_: Any
) -> dict[str, str]:
    """Celery's ``task_routes`` entry: ``{"queue": ...}`` for every task the farm sends."""
    # train_meta is a chord body: the header results come first, its payload last.
    payload = next((a for a in reversed(args) if isinstance(a, Mapping)), None) if args else None
    if payload is None:
        found = kwargs.get("payload")
        payload = found if isinstance(found, Mapping) else None
    return {"queue": queue_for_task(name, payload, gpu_workers=get_settings().gpu_workers)}
