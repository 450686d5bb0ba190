"""Where a farm run's wall time goes: every task's start and end, from Celery's own task events.

The workers run with ``-E`` (:class:`trainfarm.cli.processes.WorkerProcess`), so each task sends
``task-received``, ``task-started`` and ``task-succeeded``/``task-failed`` events with the worker's clock
(the benchmark's workers share this machine's clock). :class:`EventLog` records them in a thread while the
benchmark runs; :func:`breakdown` turns them into busy time per task kind and the idle time of the worker
slots, split into the tail (a slot that has run its last task, waiting for the others) and the gaps
before it; :func:`chord_joins` measures each run's wait from its last base model to its meta stage.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from celery import Celery

#: Task names grouped into a run's phases.
KINDS: Mapping[str, str] = {
    "farm.prepare_run": "snapshot (prepare)",
    "farm.train_base": "base models",
    "farm.train_meta": "meta stage",
}


@dataclass
class TaskSpan:
    """One task as its events tell it: name, worker, when it started and ended (epoch seconds)."""

    uuid: str
    name: str = ""
    hostname: str = ""
    received: float | None = None
    started: float | None = None
    ended: float | None = None


@dataclass
class EventLog:
    """Celery task events captured in a background thread (start it before submitting the work)."""

    app: Celery
    spans: dict[str, TaskSpan] = field(default_factory=dict)
    _receiver: Any = None
    _thread: threading.Thread | None = None
    _ready: threading.Event = field(default_factory=threading.Event)

    def _on_event(self, event: Mapping[str, Any]) -> None:
        kind = str(event.get("type", ""))
        if not kind.startswith("task-"):
            return
        span = self.spans.setdefault(str(event["uuid"]), TaskSpan(str(event["uuid"])))
        at = float(event["timestamp"])
        if kind == "task-received":
            span.name, span.received = str(event.get("name", "")), at
        elif kind == "task-started":
            span.started, span.hostname = at, str(event.get("hostname", ""))
        elif kind in ("task-succeeded", "task-failed"):
            span.ended = at

    def _capture(self) -> None:
        with self.app.connection_for_read() as conn:
            self._receiver = self.app.events.Receiver(conn, handlers={"*": self._on_event})
            self._ready.set()
            self._receiver.capture(limit=None, timeout=None, wakeup=False)

    def start(self) -> EventLog:
        """Start capturing; returns once the receiver is connected."""
        self._thread = threading.Thread(target=self._capture, name="bench-events", daemon=True)
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the Celery event receiver did not connect within 30 s")
        return self

    def stop(self) -> None:
        """Stop capturing (within the receiver's one-second safety interval)."""
        if self._receiver is not None:
            self._receiver.should_stop = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def finished(self) -> list[TaskSpan]:
        """The tasks that started and ended, oldest start first."""
        done = [s for s in self.spans.values() if s.started is not None and s.ended is not None]
        return sorted(done, key=lambda s: s.started or 0.0)


@dataclass(frozen=True)
class Breakdown:
    """Slot-seconds of a farm run: busy per task kind, idle in gaps and in the tail."""

    wall_s: float
    slots: int
    busy_s: dict[str, float]  #: per task kind (see KINDS), summed over the tasks' own run times
    idle_gaps_s: float  #: slot idle time before the tail (queue and chord-join waits)
    idle_tail_s: float  #: slot idle time after the first slot ran out of work for good

    def to_json(self) -> dict[str, object]:
        """JSON-safe figures, rounded to milliseconds."""
        return {
            "wall_s": round(self.wall_s, 3),
            "slots": self.slots,
            "busy_s": {k: round(v, 3) for k, v in self.busy_s.items()},
            "idle_gaps_s": round(self.idle_gaps_s, 3),
            "idle_tail_s": round(self.idle_tail_s, 3),
        }


def breakdown(spans: list[TaskSpan], *, start: float, end: float, slots: int) -> Breakdown:
    """Split ``slots x (end - start)`` slot-seconds into busy time per kind and idle time.

    A slot is one worker pool process; tasks are attributed to the worker that ran them (one pool process
    per worker in the benchmark, so a worker is a slot).
    """
    busy: dict[str, float] = {}
    last_end: dict[str, float] = {}
    for span in spans:
        assert span.started is not None and span.ended is not None
        kind = KINDS.get(span.name, span.name or "other")
        busy[kind] = busy.get(kind, 0.0) + (span.ended - span.started)
        last_end[span.hostname] = max(last_end.get(span.hostname, start), span.ended)
    wall = end - start
    total_busy = sum(busy.values())
    ends = list(last_end.values()) + [start] * (slots - len(last_end))
    # Once a slot has run its last task it waits for the others to finish: that is the tail. Everything
    # else idle happened while work remained (queue waits, chord joins, the next run's snapshot): gaps.
    tail = sum(end - e for e in ends)
    gaps = max(0.0, slots * wall - total_busy - tail)
    return Breakdown(wall, slots, busy, gaps, tail)


def chord_joins(last_base_ends: list[float], spans: list[TaskSpan]) -> list[float]:
    """Per run, seconds from its last base model's end to its meta stage's start.

    ``last_base_ends`` are the runs' last base-model end times (from the registry); each is matched with
    the first meta stage that started after it and is not matched yet (a run's meta stage is sent by its
    own last base model, so it is the next one to start unless another run's join is faster).
    """
    metas = sorted((s.started or 0.0) for s in spans if s.name == "farm.train_meta")
    joins = []
    for end in sorted(last_base_ends):
        later = [m for m in metas if m >= end]
        if later:
            joins.append(later[0] - end)
            metas.remove(later[0])
    return joins
