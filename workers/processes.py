"""Worker processes started by the farm itself (`farm demo`, the integration tests).

Each worker is a real `celery -A trainfarm.workers worker` subprocess in its own session (so a stop reaches
its pool children too), logging to a file, and always stopped by whoever started it: SIGTERM for a warm
shutdown, SIGKILL when that does not finish in time.
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


class WorkerProcess:
    """One `celery worker` subprocess and its log file."""

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
        self.name = name
        self.app = app
        self.env = dict(env)
        self.log_path = log_dir / f"worker-{name}.log"
        self.queues = queues
        self.concurrency = concurrency
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        """Start the worker and wait until it consumes (raises with the log tail if it does not)."""
        argv = [
            sys.executable, "-m", "celery", "-A", self.app, "worker",
            "-Q", self.queues, "-c", str(self.concurrency), "-n", f"{self.name}@%h",
            "-l", "INFO", "--without-mingle", "--without-gossip", "-E",
        ]  # fmt: skip
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for(lambda: "ready." in self.log(), READY_TIMEOUT_S, f"worker {self.name} ready", self)
        return self

    def log(self) -> str:
        """Everything the worker logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole process group (main process and pool children), like an OOM kill."""
        if self.proc is not None and self.alive():
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=STOP_TIMEOUT_S)

    def stop(self) -> None:
        """Warm shutdown (finish the current task), then force."""
        if self.proc is None or not self.alive():
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill()


def wait_for(
    check: Callable[[], bool], timeout: float, what: str, worker: WorkerProcess | None = None
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
