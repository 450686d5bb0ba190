"""Celery apps for fault tests: the farm's own app with one fault planted (workers start them with -A)."""
