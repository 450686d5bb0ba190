"""`farm up`: the whole farm on one machine in one foreground command.

It starts the embedded Redis (unless ``FARM_REDIS_URL`` names one), N CPU workers (queues cpu, meta,
control), with ``--gpu`` one worker per visible GPU (queue gpu, ``CUDA_VISIBLE_DEVICES`` set to its GPU),
beat, the dashboard (``--no-web`` leaves it out) and with ``--flower`` Flower (both behind basic auth,
:mod:`trainfarm.shared.ui_auth`); then it prints every process's log lines as one merged log, each
prefixed with its process's name. Ctrl-C (SIGINT) or SIGTERM stops everything it started, workers first
(a warm shutdown, then SIGKILL of the whole process group), then beat, Flower and the dashboard, then the
Redis it started: no process is left behind. A child that exits on its own stops the rest, and `farm up`
exits 1.

Every child is a :class:`~trainfarm.cli.processes.ChildProcess` in its own session, logging to
``$FARM_HOME/logs/up/``; the merged log is those files, tailed.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Annotated

import typer

from trainfarm.cli.flower_cmds import flower_env
from trainfarm.cli.output import console
from trainfarm.cli.processes import (
    BeatProcess,
    ChildProcess,
    FlowerProcess,
    WebProcess,
    WorkerProcess,
)
from trainfarm.shared.connections import embedded_redis, redact_url, redis_url
from trainfarm.shared.settings import get_settings
from trainfarm.shared.ui_auth import ui_credentials

#: Seconds between checks that every child is alive (and between reads of their logs).
POLL_S = 0.2


def visible_gpus() -> list[str]:
    """The GPUs this machine offers: ``CUDA_VISIBLE_DEVICES`` when set, else what ``nvidia-smi -L`` lists."""
    declared = os.environ.get("CUDA_VISIBLE_DEVICES")
    if declared is not None:
        return [d.strip() for d in declared.split(",") if d.strip() and d.strip() != "-1"]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        listing = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [str(i) for i, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]


class _Tail(threading.Thread):
    """Prints the new lines of one process's log file, prefixed with its name, until told to stop."""

    def __init__(self, process: ChildProcess, width: int) -> None:
        super().__init__(daemon=True)
        self.process = process
        self.prefix = f"{process.name:<{width}} |"
        self.done = threading.Event()

    def run(self) -> None:
        offset = 0
        while True:
            finished = self.done.is_set()
            path = self.process.log_path
            if path.exists():
                with path.open("rb") as fh:
                    fh.seek(offset)
                    chunk = fh.read()
                # Only whole lines; a partial last line waits for its end (or for the stop).
                cut = len(chunk) if finished else chunk.rfind(b"\n") + 1
                for line in chunk[:cut].decode(errors="replace").splitlines():
                    print(f"{self.prefix} {line}", flush=True)
                offset += cut
            if finished:
                return
            time.sleep(POLL_S)


class _SignalledError(Exception):
    """Raised in the main thread by SIGINT/SIGTERM: leave the wait loop and stop everything."""


def _raise_stop(signum: int, frame: FrameType | None) -> None:
    # The first signal decides; any further one (a second Ctrl-C, a supervisor's repeat) must not
    # interrupt the orderly stop and leave half the farm running.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    raise _SignalledError(signal.Signals(signum).name)


def _children(
    workers: int, gpus: list[str], beat: bool, logs: Path, *, flower: bool = False, web: bool = False
) -> list[ChildProcess]:
    env = dict(os.environ)
    if gpus:
        env["FARM_GPU_WORKERS"] = "true"  # enqueuers route the GPU-capable models to the gpu queue
    children: list[ChildProcess] = [
        WorkerProcess(f"cpu{i + 1}", env, logs, queues="cpu,meta,control") for i in range(workers)
    ]
    children += [
        WorkerProcess(f"gpu{g}", env | {"CUDA_VISIBLE_DEVICES": g}, logs, queues="gpu") for g in gpus
    ]
    if beat:
        children.append(BeatProcess("beat", env, logs))
    if web:
        children.append(WebProcess("web", env, logs))
    if flower:
        settings = get_settings()
        children.append(
            FlowerProcess(
                "flower",
                env | flower_env(settings),
                logs,
                address=settings.flower_address,
                port=settings.flower_port,
            )
        )
    return children


def _supervise(children: list[ChildProcess], tails: list[_Tail]) -> int:
    """Start the children (tailing their logs) and wait; 0 after a signal, 1 when a child failed."""
    width = max([len(c.name) for c in children] + [5])
    try:
        for child in children:
            child.log_path.unlink(missing_ok=True)  # this session's lines only
            tail = _Tail(child, width)
            tail.start()
            tails.append(tail)
            child.start()
        names = ", ".join(c.name for c in children) or "no processes"
        console.print(f"farm up: ready: {names} (Ctrl-C stops everything)")
        while True:
            dead = [c.name for c in children if not c.alive()]
            if dead:
                console.print(f"[red]farm up: {', '.join(dead)} exited; stopping everything[/]")
                return 1
            time.sleep(POLL_S)
    except _SignalledError as stop:
        console.print(f"farm up: {stop}: stopping everything")
        return 0
    except Exception as exc:  # a child that did not start: stop the others, then say why
        console.print(f"[red]farm up: {exc}[/]")
        return 1


def up(
    workers: Annotated[int, typer.Option("--workers", "-w", min=0, help="CPU worker processes")] = 2,
    gpu: Annotated[bool, typer.Option("--gpu", help="one more worker per visible GPU (queue gpu)")] = False,
    beat: Annotated[bool, typer.Option("--beat/--no-beat", help="run beat (the schedule)")] = True,
    flower: Annotated[
        bool, typer.Option("--flower", help="run Flower too (basic auth; see `farm flower`)")
    ] = False,
    web: Annotated[bool, typer.Option("--web/--no-web", help="run the dashboard (`farm web`)")] = True,
) -> None:
    """Run Redis, workers, beat, the dashboard (and Flower) in the foreground, one log; Ctrl-C stops all."""
    settings = get_settings()
    gpus = visible_gpus() if gpu else []
    if gpu and not gpus:
        raise typer.BadParameter("--gpu: no GPU is visible (CUDA_VISIBLE_DEVICES / nvidia-smi -L)")
    started_redis = not settings.redis_url and not embedded_redis(settings).is_running()
    url = redis_url(settings)  # starts the embedded server when none is configured
    console.print(f"farm up: Redis {redact_url(url)}{' (embedded, started here)' if started_redis else ''}")
    children = _children(workers, gpus, beat, settings.home / "logs" / "up", flower=flower, web=web)
    if web:
        creds = ui_credentials(settings)
        console.print(
            f"farm up: dashboard at http://{settings.web_address}:{settings.web_port} "
            f"(user {creds.user}; password from {creds.source})"
        )
    if flower:
        creds = ui_credentials(settings)
        console.print(
            f"farm up: Flower at http://{settings.flower_address}:{settings.flower_port} "
            f"(user {creds.user}; password from {creds.source})"
        )
    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGINT, signal.SIGTERM)}
    tails: list[_Tail] = []
    try:
        code = _supervise(children, tails)
    finally:
        # Ignore further signals while stopping (see _raise_stop).
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        _stop_all(children)
        for tail in tails:
            tail.done.set()
            tail.join(timeout=5)
        if started_redis:
            embedded_redis(settings).stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        console.print("farm up: stopped")
    raise typer.Exit(code)


def _stop_all(children: list[ChildProcess]) -> None:
    """Workers first (they may finish a task), then beat, Flower and the dashboard; each warm, then killed."""
    for child in sorted(children, key=lambda c: isinstance(c, BeatProcess | FlowerProcess | WebProcess)):
        child.stop()


def register(app: typer.Typer) -> None:
    """Add `up` to the main `farm` app."""
    app.command("up")(up)


__all__ = ["register", "up", "visible_gpus"]
