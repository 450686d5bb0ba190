"""The Celery app, configured from the farm's settings.

Every setting in :func:`build_config` answers a known Celery/Redis failure mode (JSON only, late acks,
prefetch 1, time limits under the visibility timeout, reconnecting forever, deduplicated redeliveries);
they are set here and nowhere else, and tests check their behaviour. Each setting and what it prevents:
docs/architecture.md#celery-settings; what the reliability suite proves about them: docs/RELIABILITY.md.
The comments below explain the values that are computed.
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from kombu import Queue, pools  # type: ignore[attr-defined]

from trainfarm.shared.connections import celery_url, tls_options, without_tls_query
from trainfarm.shared.settings import get_settings
from trainfarm.workers.routing import DEFAULT_QUEUE, QUEUES, route_task


def build_config() -> dict[str, Any]:
    """Celery settings derived from the farm settings and config (kept in one place, tested)."""
    settings = get_settings()
    training = settings.load_config().training
    hard_limit = training.task_time_limit_s
    # Redis re-delivers an unacknowledged message after visibility_timeout: it must exceed the longest a
    # task may run (the config refuses less), or a second worker starts the same task while the first is
    # still at it. It is also how long the tasks of a worker whose main process died stay lost.
    visibility = training.visibility_timeout_s
    full_url = celery_url(settings)
    # rediss://: the TLS options travel as settings (kombu and the result backend each want them so).
    tls = tls_options(full_url)
    url = without_tls_query(full_url) if tls else full_url
    transport = {
        "visibility_timeout": visibility,
        # kombu sweeps for expired unacknowledged messages every interval x throttle seconds (100 s by
        # default): one sweep per tenth of the timeout (1-10 s) bounds the wait at about 1.1 x timeout.
        "unacked_restore_interval": max(1, min(10, visibility // 10)),
        "unacked_restore_throttle": 1,
    }
    # Always set (Celery's own defaults when not TLS): rebind() updates a used app, and a TLS setting left
    # from an earlier farm must not reach a plain one.
    secure: dict[str, Any] = {"broker_use_ssl": tls or False, "redis_backend_use_ssl": tls}
    return secure | {
        "broker_url": url,
        "result_backend": url,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        "result_accept_content": ["json"],
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "task_acks_on_failure_or_timeout": True,
        "worker_prefetch_multiplier": 1,
        "task_time_limit": hard_limit,
        # The soft limit raises inside the task so it can record "timed out" before the hard kill.
        # At least a second below it: for limits under 4 s the quarter rounds to 0 (soft == hard).
        "task_soft_time_limit": max(1, hard_limit - max(1, min(30, hard_limit // 4))),
        "broker_transport_options": transport,
        "result_backend_transport_options": transport,
        "broker_connection_retry_on_startup": True,
        "broker_connection_max_retries": None,
        "worker_cancel_long_running_tasks_on_connection_loss": True,
        # Pool processes are replaced when they have grown (ML libraries keep caches and fragment the heap),
        # checked after each task, and in any case after 200 tasks. A count of 20 alone replaced them
        # every two tiny runs, and each new one re-imports LightGBM, XGBoost and CatBoost (seconds).
        "worker_max_memory_per_child": 2 * 1024 * 1024,  # KiB
        "worker_max_tasks_per_child": 200,
        "worker_deduplicate_successful_tasks": True,
        "result_expires": max(7 * 86400, 4 * hard_limit),
        "result_extended": True,
        "task_track_started": True,
        "task_allow_error_cb_on_chord_header": True,
        # A retry's countdown is held unacknowledged by the worker: one longer than the visibility timeout
        # would be delivered a second time meanwhile (celery#5935).
        "task_annotations": {"*": {"retry_backoff_max": max(1, min(300, visibility // 2))}},
        "task_queues": [Queue(name) for name in QUEUES],
        "task_default_queue": DEFAULT_QUEUE,
        # One router decides every task's queue (base models by their declared device); no call site does.
        "task_routes": (route_task,),
        "worker_send_task_events": True,
        "task_send_sent_event": True,
        "worker_hijack_root_logger": False,
        "redis_socket_timeout": 30,
        "redis_socket_connect_timeout": 10,
        "redis_retry_on_timeout": True,
        "redis_backend_health_check_interval": 30,
        "timezone": "UTC",
        "enable_utc": True,
    }


def create_app() -> Celery:
    """The Celery app; its settings are computed on first use (importing it starts nothing)."""
    celery = Celery("trainfarm", include=["trainfarm.workers.tasks", "trainfarm.workers.replay_tasks"])
    # Lazy: reading the settings may start the embedded Redis, which must not happen at import time.
    celery.add_defaults(build_config)
    return celery


app = create_app()


def rebind(celery: Celery | None = None) -> None:
    """Point an already-used app at the current settings' Redis (tests switch farm homes in one process).

    Celery caches its connection pool and result backend on first use; they are dropped here so the
    next call connects afresh. Worker processes never need this: they read the settings once at start.
    """
    celery = celery or app
    celery.conf.update(build_config())
    # kombu keeps connection pools in a process-wide registry keyed by URL: reset it, or an equal URL
    # would hand back a pool closed for the previous farm.
    pools.reset()
    celery._pool = None
    if "amqp" in celery.__dict__:
        celery.amqp._producer_pool = None
    celery._backend_cache = None
    if hasattr(celery._local, "backend"):
        del celery._local.backend


def inspect_workers(timeout: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """What the running workers answer within ``timeout`` seconds: ``(active_queues, stats)`` by worker.

    The app is first pointed at the current settings' Redis (:func:`rebind`): a process that has switched
    farm homes (tests, an embedding tool) must not ask another farm's workers.
    """
    rebind()
    inspector = app.control.inspect(timeout=timeout)
    return inspector.active_queues() or {}, inspector.stats() or {}
