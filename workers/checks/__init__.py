"""The periodic checks beat runs through the workers: triggers, drift and skew inputs, outcome ingestion and
alert delivery. Celery-free functions; :mod:`trainfarm.workers.tasks` wraps them."""
