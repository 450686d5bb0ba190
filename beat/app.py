"""The Celery app `celery beat` runs: the workers' app plus the schedule (`celery -A trainfarm.beat.app`).

Workers never load this module: only beat needs the schedule and the redbeat settings, and the layering
keeps it so (``beat`` imports ``workers``, never the other way round).
"""

from __future__ import annotations

from typing import Any

from trainfarm.beat.schedule import beat_settings
from trainfarm.shared.connections import redis_url
from trainfarm.shared.settings import get_settings
from trainfarm.workers.celery_app import app


def _beat_config() -> dict[str, Any]:
    settings = get_settings()
    # redis-py's own URL form (``unix://`` for the embedded server): redbeat connects with redis-py.
    return beat_settings(settings.load_config(), redis_url(settings))


# Lazy, like the workers' settings: reading them may start the embedded Redis.
app.add_defaults(_beat_config)

__all__ = ["app"]
