"""`farm worker` and `farm beat`: start one Celery worker or Celery beat in the foreground (`farm up` starts
all)."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from trainfarm.cli.output import console
from trainfarm.workers.routing import QUEUES


def worker(
    queues: Annotated[str | None, typer.Option("--queues", "-Q", help="comma-separated queues")] = None,
    concurrency: Annotated[int, typer.Option("--concurrency", "-c", help="pool processes")] = 1,
    gpu: Annotated[bool, typer.Option("--gpu", help="consume the gpu queue (one worker per GPU)")] = False,
    hostname: Annotated[str | None, typer.Option("--hostname", "-n", help="worker node name")] = None,
    loglevel: Annotated[str, typer.Option("--loglevel", "-l")] = "INFO",
) -> None:
    """Start a Celery worker (a thin wrapper over `celery -A trainfarm.workers worker`)."""
    chosen = queues or ("gpu" if gpu else "cpu,meta,control")
    unknown = [q for q in chosen.split(",") if q not in QUEUES]
    if unknown:
        raise typer.BadParameter(f"unknown queue(s) {', '.join(unknown)}; known: {', '.join(QUEUES)}")
    if gpu and concurrency != 1:
        raise typer.BadParameter("a GPU worker runs one task at a time: use --concurrency 1 per GPU")
    name = hostname or f"{'gpu' if gpu else 'cpu'}-{os.getpid()}@%h"
    argv = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "trainfarm.workers",
        "worker",
        "-Q",
        chosen,
        "-c",
        str(concurrency),
        "-n",
        name,
        "-l",
        loglevel,
        "-E",
        "--without-mingle",
        "--without-gossip",
    ]
    console.print(f"starting: {' '.join(argv[2:])}")
    os.execv(sys.executable, argv)


def beat(loglevel: Annotated[str, typer.Option("--loglevel", "-l")] = "INFO") -> None:
    """Start Celery beat with the farm's schedule (a thin wrapper over `celery -A trainfarm.beat.app beat`).

    The schedule comes from the universe config (a full-retrain fan-out per timeframe at its cadence) and
    lives in the farm's Redis (celery-redbeat): a second beat waits for the first's lock instead of firing
    too, and a restarted beat runs a missed slot once.
    """
    argv = [sys.executable, "-m", "celery", "-A", "trainfarm.beat.app", "beat", "-l", loglevel]
    console.print(f"starting: {' '.join(argv[2:])}")
    os.execv(sys.executable, argv)


def register(app: typer.Typer) -> None:
    """Add `worker` and `beat` to the main `farm` app."""
    app.command("worker")(worker)
    app.command("beat")(beat)
