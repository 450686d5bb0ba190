"""The farm's worker app, except that the first prepare task is SIGKILLed right before it launches its chord.

That is the moment a worker's death used to leave a run stuck: the marker file (its path in
``TRAINFARM_TEST_KILL_MARKER``) makes it happen once, so the redelivered prepare task goes through.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

from trainfarm.workers import tasks
from trainfarm.workers.celery_app import app
from trainfarm.workers.payloads import StageJob

_launch = tasks.launch_chord


def _dies_once(stage: StageJob) -> None:
    marker = Path(os.environ["TRAINFARM_TEST_KILL_MARKER"])
    if not marker.exists():
        marker.write_text(stage.run_id)
        os.kill(os.getpid(), signal.SIGKILL)  # the pool process, like the OOM killer would
    _launch(stage)


tasks.launch_chord = _dies_once

__all__ = ["app"]
