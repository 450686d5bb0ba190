"""The Celery side of trainfarm: the app, one queue router, thin tasks, and the run orchestration they call.

``celery -A trainfarm.workers worker`` finds the app here (``app``, imported on first access, so that the
Celery-free orchestration modules below can be imported and tested without loading Celery).

What each module may import (the folder says it: ``workers`` sits on top of ``shared``):

* Celery-free, tested without Celery: :mod:`~trainfarm.workers.payloads` (the JSON payloads),
  :mod:`~trainfarm.workers.runs` (one active run per market, the meta guard, delivery counting, the reaper),
  :mod:`~trainfarm.workers.stages` (prepare, train a base model, meta stage, fail), and
  :mod:`~trainfarm.workers.routing` (which queue a task goes to);
* Celery: :mod:`~trainfarm.workers.celery_app` (settings, router) and :mod:`~trainfarm.workers.tasks`
  (parse the payload, call a stage, return a small JSON reference).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from celery import Celery

    app: Celery


def __getattr__(name: str) -> Any:
    if name == "app":
        from trainfarm.workers.celery_app import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["app"]
