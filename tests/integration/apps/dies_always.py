"""The farm's worker app, except that training one base model SIGKILLs its pool process, every time.

A poison message: whatever worker takes it dies (as when a model's fit runs out of memory on every try).
The model is named in ``TRAINFARM_TEST_POISON_MODEL``.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from trainfarm.workers import stages
from trainfarm.workers.celery_app import app

_train_base = stages.train_base


def _dies_on_the_poison_model(job: Any, **kwargs: Any) -> dict[str, object]:
    if job.model == os.environ["TRAINFARM_TEST_POISON_MODEL"]:
        os.kill(os.getpid(), signal.SIGKILL)  # the pool process, like the OOM killer would
    return _train_base(job, **kwargs)


stages.train_base = _dies_on_the_poison_model

__all__ = ["app"]
