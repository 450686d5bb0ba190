"""Real Celery worker processes for integration tests (never task_always_eager).

Each worker is a `celery -A workers worker` subprocess in its own session, started with the test's FARM_*
environment, and always stopped (SIGTERM, then SIGKILL) by the fixture that made it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

READY_TIMEOUT_S = 90.0


class WorkerProcess:
    """One `celery worker` subprocess and its log file."""

    def __init__(
        self,
        name: str,
        env: dict[str, str],
        log_dir: Path,
        *,
        queues: str = "cpu,meta,control",
        concurrency: int = 2,
    ) -> None:
        self.name = name
        self.env = env
        self.log_path = log_dir / f"worker-{name}.log"
        self.queues = queues
        self.concurrency = concurrency
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "workers",
            "worker",
            "-Q",
            self.queues,
            "-c",
            str(self.concurrency),
            "-n",
            f"{self.name}@localhost",
            "-l",
            "INFO",
            "--without-mingle",
            "--without-gossip",
            "-E",
        ]
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        wait_for(lambda: "ready." in self.log(), READY_TIMEOUT_S, f"worker {self.name} ready", self)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group (main process and pool children), like an OOM kill."""
        if self.proc is not None and self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Warm shutdown, then force."""
        if self.proc is None or not self.alive():
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()


def wait_for(
    check: Callable[[], bool], timeout: float, what: str, worker: WorkerProcess | None = None
) -> None:
    """Poll ``check`` until true; fail with the worker's log tail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        if worker is not None and not worker.alive():
            raise AssertionError(
                f"worker {worker.name} exited while waiting for {what}:\n{worker.log()[-4000:]}"
            )
        time.sleep(0.25)
    tail = worker.log()[-4000:] if worker is not None else ""
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}\n{tail}")
