"""Celery side of trainfarm: the Celery app, queue routing and thin tasks.

``celery -A workers worker`` finds the app here. Tasks parse their JSON payloads and call plain
functions in ``shared`` (which never imports Celery).
"""

from workers.celery_app import app

__all__ = ["app"]
