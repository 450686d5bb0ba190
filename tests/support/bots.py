"""A `farm bot --json` process seen from a test: its JSON events, read on a thread, and a clean stop."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Bound on a reaction a test waits for (a nudge, a reconnect or a re-check, then one pack load): a deadline
#: against hangs, never a speed requirement.
REACT_TIMEOUT_S = 60.0


@dataclass
class Bot:
    """A `farm bot --json` process and the JSON events it printed (read on a thread: never blocks)."""

    proc: subprocess.Popen[str]
    stderr_path: Path
    events: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # (monotonic, event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                with self._lock:
                    self.events.append((time.monotonic(), event))

    def seen(self) -> list[dict[str, Any]]:
        with self._lock:
            return [event for _, event in self.events]

    def wait(
        self, condition: Callable[[dict[str, Any]], bool], timeout: float, what: str, *, after: int = 0
    ) -> tuple[int, float, dict[str, Any]]:
        """The first event from index ``after`` on that satisfies ``condition``: (index, when, event)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                for index in range(after, len(self.events)):
                    when, event = self.events[index]
                    if condition(event):
                        return index, when, event
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(
                    f"no {what} from the bot within {timeout:.0f}s (exit code {self.proc.poll()}); "
                    f"events: {self.seen()}; stderr tail: {self.stderr_path.read_text()[-3000:]}"
                )
            time.sleep(0.02)

    def reload(self, version: str, timeout: float, *, after: int = 0) -> tuple[int, float, dict[str, Any]]:
        """The bot's reload event to ``version``."""
        return self.wait(
            lambda e: e.get("event") == "reload" and e.get("version") == version,
            timeout,
            f"reload to {version}",
            after=after,
        )

    def score(self, version: str, *, after: int) -> dict[str, Any]:
        """A score event by ``version`` after index ``after``."""
        return self.wait(
            lambda e: e.get("event") == "score" and e.get("version") == version,
            REACT_TIMEOUT_S,
            f"score by {version}",
            after=after,
        )[2]

    def stop(self) -> int:
        """SIGTERM (the bot closes cleanly), SIGKILL if it has not exited within 20 s; the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=20)
        return self.proc.returncode
