"""The farm dashboard (``farm web``): read-only pages over the registry, Redis, packs; Prometheus metrics.

May import :mod:`trainfarm.shared` and the Celery-free read functions of :mod:`trainfarm.workers`
(status, runs); never Celery itself and never anything that writes.
"""
