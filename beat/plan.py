"""What beat will do in the coming days: each retrain fire, its estimated work, and where work piles up.

:func:`plan` is a pure function of the schedule's entries, each entry's last run (redbeat keeps it in
Redis), the per-run durations seen in the registry and the worker capacity; `farm schedule` gathers those
and prints the result. A fire's work is one run per symbol, each estimated by the median duration of that
timeframe's finished runs (none finished yet: unknown, shown as such). The fires are queued in time order
on ``capacity`` parallel workers; a fire whose work has not drained when the next one comes is flagged
``over_capacity``: the queue grows, and champions will miss their freshness limits.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Entry:
    """One retrain entry (full or meta-only): name, timeframe, cadence, and how many runs a fire starts."""

    name: str
    timeframe: str
    every: timedelta
    runs_per_fire: int
    kind: str = "full"  #: "full" or "meta" (meta-only runs take seconds, full ones minutes)

    @property
    def work_key(self) -> str:
        """This entry's key in ``seconds_per_run``: the timeframe, plus ``:meta`` for meta-only runs."""
        return self.timeframe if self.kind == "full" else f"{self.timeframe}:meta"


@dataclass(frozen=True)
class Fire:
    """One fire of an entry in the plan."""

    entry: str
    timeframe: str
    at: datetime
    runs: int
    work_s: float | None  #: run-seconds of work this fire enqueues (None: no history yet)
    backlog_s: float  #: seconds of earlier work still queued when it fires (0: the workers are free)
    over_capacity: bool  #: earlier work has not drained when this fires

    def to_json(self) -> dict[str, object]:
        """JSON-safe dict (``at`` in ISO 8601)."""
        data = asdict(self)
        data["at"] = self.at.isoformat()
        return data


def run_seconds(durations: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Median seconds of a run per work key (:attr:`Entry.work_key`), from the finished runs' durations
    (keys without any are left out)."""
    return {tf: float(statistics.median(seconds)) for tf, seconds in durations.items() if seconds}


def next_fire(entry: Entry, last_run: datetime | None, now: datetime) -> datetime:
    """When ``entry`` fires next: one cadence after its last run, or now when it never ran or is overdue."""
    if last_run is None:
        return now
    return max(now, last_run + entry.every)


def plan(
    entries: Sequence[Entry],
    last_runs: Mapping[str, datetime | None],
    now: datetime,
    *,
    horizon: timedelta,
    seconds_per_run: Mapping[str, float],
    capacity: int,
) -> list[Fire]:
    """Every fire of ``entries`` from ``now`` until ``now + horizon``, in time order, with its load."""
    if capacity < 1:
        raise ValueError(f"capacity must be at least one worker process, got {capacity}")
    events: list[tuple[datetime, Entry]] = []
    for entry in entries:
        at = next_fire(entry, last_runs.get(entry.name), now)
        while at <= now + horizon:
            events.append((at, entry))
            at += entry.every
    events.sort(key=lambda e: (e[0], e[1].name))
    fires = []
    free_at = now  # when the workers will have drained everything queued so far
    for at, entry in events:
        per_run = seconds_per_run.get(entry.work_key)
        work = None if per_run is None else per_run * entry.runs_per_fire
        backlog = max(0.0, (free_at - at).total_seconds())
        fires.append(Fire(entry.name, entry.timeframe, at, entry.runs_per_fire, work, backlog, backlog > 0))
        free_at = max(free_at, at) + timedelta(seconds=(work or 0.0) / capacity)
    return fires


__all__ = ["Entry", "Fire", "next_fire", "plan", "run_seconds"]
