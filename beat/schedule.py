"""The beat schedule, built from the universe config: full and meta-only retrain entries, a trigger check.

Celery-free: plain data that :mod:`trainfarm.beat.app` installs on the farm's Celery app, handed to
celery-redbeat (:func:`beat_settings`), which keeps every entry and its last run time in the farm's Redis.
The one beat that holds ``<prefix>:lock`` ticks (a second waits for it); redbeat remembers the config's
entries under ``<prefix>:statics``, so an entry that left the config is deleted at the next start; a
missed slot fires once (Celery's interval schedule compares "now" with the stored last run). The entries,
what each sends and what beat guarantees: docs/operations.md#beat-and-its-entries.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from trainfarm.shared.config import FarmConfig
from trainfarm.workers.routing import (
    CHECK_SHADOW,
    CHECK_TRIGGERS,
    DELIVER_ALERTS,
    FAN_OUT_RETRAIN,
    INGEST_BARS,
    INGEST_OUTCOMES,
    RECONCILE_CHAMPIONS,
)

#: Name of the task every full-retrain entry sends (defined in :mod:`trainfarm.workers.tasks`).
FAN_OUT_TASK = FAN_OUT_RETRAIN
#: The entry that evaluates the trigger policies every ``[beat] trigger_check``.
TRIGGER_CHECK_ENTRY = "check-triggers"
#: The entry that ingests the bots' outcome stream every ``[beat] outcome_ingest``.
OUTCOME_INGEST_ENTRY = "ingest-outcomes"
#: The entry that syncs new bars from each symbol's source every ``[data] sync``.
BAR_INGEST_ENTRY = "ingest-bars"
#: The entry that delivers alerts (webhook, e-mail) every ``[alerts] check``.
ALERTS_ENTRY = "deliver-alerts"
#: The entry that re-announces champions whose pointer or Redis key disagrees with the registry.
RECONCILE_ENTRY = "reconcile-champions"
#: The entry that ingests the bots' paired challenger scores and decides challengers.
SHADOW_CHECK_ENTRY = "check-shadow"
#: Redis key prefix of the schedule, its lock and its bookkeeping.
KEY_PREFIX = "farm:beat:"
#: Longest beat sleeps between ticks; with redbeat it also sets the lock's lifetime (5 x this).
MAX_LOOP_INTERVAL_S = 30


def full_retrain_entry(timeframe: str) -> str:
    """The schedule entry's name for the full retrain of ``timeframe``."""
    return f"retrain-{timeframe}"


def meta_retrain_entry(timeframe: str) -> str:
    """The schedule entry's name for the meta-only retrain of ``timeframe``."""
    return f"meta-{timeframe}"


def beat_schedule(config: FarmConfig) -> dict[str, dict[str, Any]]:
    """Celery's ``beat_schedule``: a full-retrain fan-out per timeframe of the universe at its cadence, and
    the trigger check (:mod:`trainfarm.workers.checks.trigger_check`) every ``[beat] trigger_check``, the
    outcome
    ingestion (:mod:`trainfarm.workers.checks.outcome_ingest`) every ``[beat] outcome_ingest``, the alert
    delivery
    (:mod:`trainfarm.workers.checks.alert_delivery`) every ``[alerts] check`` and the reconciliation of
    champion pointers
    and keys (:mod:`trainfarm.shared.champions.reconcile`) every ``[beat] reconcile``, the shadow check
    (:mod:`trainfarm.workers.checks.shadow_check`) every ``[beat] shadow_check``; and, where a symbol
    of the universe has a source, the bar sync (:mod:`trainfarm.shared.data.sync`) every ``[data] sync``.

    A message that waited longer than one cadence is dropped (``expires``): the next slot's message
    supersedes it, so a backlog never turns into a burst of identical fan-outs.
    """
    schedule: dict[str, dict[str, Any]] = {
        TRIGGER_CHECK_ENTRY: _every(CHECK_TRIGGERS, config.beat.trigger_check),
        OUTCOME_INGEST_ENTRY: _every(INGEST_OUTCOMES, config.beat.outcome_ingest),
        ALERTS_ENTRY: _every(DELIVER_ALERTS, config.alerts.check),
        RECONCILE_ENTRY: _every(RECONCILE_CHAMPIONS, config.beat.reconcile),
        SHADOW_CHECK_ENTRY: _every(CHECK_SHADOW, config.beat.shadow_check),
    }
    sync = config.data.sync
    if sync is not None and any(config.data.source_of(symbol) for symbol in config.universe.symbols):
        schedule[BAR_INGEST_ENTRY] = _every(INGEST_BARS, sync)
    for tf in config.universe.timeframes:
        cadence: timedelta = config.params(tf).cadence
        schedule[full_retrain_entry(tf.value)] = {
            "task": FAN_OUT_TASK,
            "schedule": cadence,
            "kwargs": {"payload": {"timeframe": tf.value, "reason": "schedule"}},
            "options": {"expires": max(1.0, cadence.total_seconds())},
        }
        meta_every = config.params(tf).meta_cadence
        if meta_every is not None:
            schedule[meta_retrain_entry(tf.value)] = {
                "task": FAN_OUT_TASK,
                "schedule": meta_every,
                "kwargs": {"payload": {"timeframe": tf.value, "reason": "schedule", "kind": "meta"}},
                "options": {"expires": max(1.0, meta_every.total_seconds())},
            }
    return schedule


def _every(task: str, every: timedelta) -> dict[str, Any]:
    return {"task": task, "schedule": every, "options": {"expires": max(1.0, every.total_seconds())}}


def beat_settings(config: FarmConfig, redis_url: str) -> dict[str, Any]:
    """The Celery settings that make ``celery beat`` use redbeat with this schedule in ``redis_url``."""
    return {
        "beat_schedule": beat_schedule(config),
        "beat_scheduler": "redbeat.RedBeatScheduler",
        "beat_max_loop_interval": MAX_LOOP_INTERVAL_S,
        "redbeat_redis_url": redis_url,
        "redbeat_key_prefix": KEY_PREFIX,
        "redbeat_lock_timeout": 5 * MAX_LOOP_INTERVAL_S,
    }


__all__ = [
    "ALERTS_ENTRY",
    "BAR_INGEST_ENTRY",
    "FAN_OUT_TASK",
    "KEY_PREFIX",
    "MAX_LOOP_INTERVAL_S",
    "OUTCOME_INGEST_ENTRY",
    "SHADOW_CHECK_ENTRY",
    "TRIGGER_CHECK_ENTRY",
    "beat_schedule",
    "beat_settings",
    "full_retrain_entry",
    "meta_retrain_entry",
]
