"""`python -m trainfarm.cli.flower_main -A trainfarm.workers flower ...`: Flower with every page behind auth.

Flower 2 checks basic auth only in handlers marked ``@tornado.web.authenticated``; its Prometheus
endpoint ``/metrics`` is not, so it answers anyone (task names, worker names, counts). This entry point
marks it before handing over to Celery's command line, so ``/metrics`` needs the same credentials as
every other page. ``/healthcheck`` stays open: it says "OK" and nothing else (container healthchecks).
"""

from __future__ import annotations

import tornado.web
from flower.views import monitor  # type: ignore[import-untyped]

_protected = False


def protect_metrics() -> None:
    """Put Flower's ``/metrics`` behind the same authentication as its other pages (once per process)."""
    global _protected  # noqa: PLW0603 - a one-time patch of Flower's handler class
    if not _protected:
        monitor.Metrics.get = tornado.web.authenticated(monitor.Metrics.get)
        _protected = True


def main() -> None:
    """Celery's command line, with Flower's metrics protected."""
    from celery.__main__ import main as celery_main

    protect_metrics()
    celery_main()


if __name__ == "__main__":
    main()
