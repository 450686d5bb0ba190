"""Processes the farm starts itself (`farm demo`, `farm up`, the tests, the benches): Celery workers, beat,
Flower, and the dashboard.

Each is a real subprocess in its own session (so a stop reaches its pool children too), logging to a file,
and always stopped by whoever started it: SIGTERM for a warm shutdown, SIGKILL when that does not finish in
time.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

READY_TIMEOUT_S = 90.0
STOP_TIMEOUT_S = 30.0


class ChildProcess:
    """One subprocess the farm started, in its own session, and its log file."""

    #: What the process logs once it is up.
    ready_marker = "ready."
    kind = "process"

    def __init__(self, name: str, env: Mapping[str, str], log_dir: Path) -> None:
        self.name = name
        self.env = dict(env)
        self.log_path = log_dir / f"{self.kind}-{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def command(self) -> list[str]:
        """The whole command line."""
        raise NotImplementedError

    def start(self) -> ChildProcess:
        """Start the process and wait until it is up (raises with the log tail if it is not)."""
        self.launch()
        return self.wait_ready()

    def launch(self) -> ChildProcess:
        """Start the process without waiting for it (e.g. a worker whose Redis is not up yet)."""
        argv = self.command()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return self

    def ready(self) -> bool:
        """True once the process has logged that it is up."""
        return self.ready_marker in self.log()

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> ChildProcess:
        """Wait until the launched process is up (raises with the log tail if it is not)."""
        wait_for(self.ready, timeout, f"{self.kind} {self.name} up", self)
        return self

    def log(self) -> str:
        """Everything the process logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group (main process and pool children), like an OOM kill."""
        if self.proc is not None and self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        """Warm shutdown (a worker finishes its current task), then force after ``timeout`` seconds."""
        if self.proc is None or not self.alive():
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()


class CeleryProcess(ChildProcess):
    """One `celery -A <app> <command>` subprocess (a worker, beat or Flower, below)."""

    kind = "celery"

    def __init__(
        self, name: str, env: Mapping[str, str], log_dir: Path, *, app: str = "trainfarm.workers"
    ) -> None:
        super().__init__(name, env, log_dir)
        self.app = app

    def argv(self) -> list[str]:
        """The command line (after ``python -m celery -A <app>``)."""
        raise NotImplementedError

    def command(self) -> list[str]:
        return [sys.executable, "-m", "celery", "-A", self.app, *self.argv()]


class WorkerProcess(CeleryProcess):
    """One `celery worker` subprocess."""

    kind = "worker"

    def __init__(
        self,
        name: str,
        env: Mapping[str, str],
        log_dir: Path,
        *,
        queues: str = "cpu,meta,control",
        concurrency: int = 1,
        app: str = "trainfarm.workers",
    ) -> None:
        super().__init__(name, env, log_dir, app=app)
        self.queues = queues
        self.concurrency = concurrency

    def argv(self) -> list[str]:
        return [
            "worker", "-Q", self.queues, "-c", str(self.concurrency), "-n", f"{self.name}@%h",
            "-l", "INFO", "--without-mingle", "--without-gossip", "-E",
        ]  # fmt: skip


class BeatProcess(CeleryProcess):
    """One `celery beat` subprocess (redbeat: it fires only while it holds the schedule's lock)."""

    kind = "beat"
    ready_marker = "beat: Starting..."

    def __init__(
        self, name: str, env: Mapping[str, str], log_dir: Path, *, app: str = "trainfarm.beat.app"
    ) -> None:
        super().__init__(name, env, log_dir, app=app)

    def argv(self) -> list[str]:
        return ["beat", "-l", "DEBUG"]


class FlowerProcess(CeleryProcess):
    """One `celery flower` subprocess (the farm's Celery app), basic auth from its environment.

    The credentials travel as ``FLOWER_BASIC_AUTH`` in ``env`` (Flower reads its options from ``FLOWER_*``
    variables), never on the command line, where `ps` would show them to every user of the machine.
    """

    kind = "flower"
    ready_marker = "Visit me at"

    def __init__(self, name: str, env: Mapping[str, str], log_dir: Path, *, address: str, port: int) -> None:
        if not env.get("FLOWER_BASIC_AUTH"):
            raise ValueError("Flower runs with basic auth only: FLOWER_BASIC_AUTH is not set")
        super().__init__(name, env, log_dir)
        self.address, self.port = address, port

    def command(self) -> list[str]:
        # Flower through the farm's entry point, which puts its /metrics behind the auth too.
        return [sys.executable, "-m", "trainfarm.cli.flower_main", "-A", self.app, *self.argv()]

    def argv(self) -> list[str]:
        return ["flower", f"--address={self.address}", f"--port={self.port}"]

    @property
    def url(self) -> str:
        """Where Flower answers."""
        return f"http://{self.address}:{self.port}"


class WebProcess(ChildProcess):
    """The dashboard, `farm web`, as a subprocess."""

    kind = "web"
    ready_marker = "Uvicorn running on"

    def command(self) -> list[str]:
        return [sys.executable, "-c", "from trainfarm.cli.app import main; main()", "web"]


def wait_for(
    check: Callable[[], bool], timeout: float, what: str, worker: ChildProcess | None = None
) -> None:
    """Poll ``check`` until it is true; raise with the worker's log tail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if worker is not None and not worker.alive():
            raise RuntimeError(
                f"worker {worker.name} exited while waiting for {what}:\n{worker.log()[-4000:]}"
            )
        time.sleep(0.25)
    tail = worker.log()[-4000:] if worker is not None else ""
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")
