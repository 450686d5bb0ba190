"""`python -m bench overhead`: what Celery and Redis add to every task, with no-op tasks on real workers.

:data:`WORKERS` real ``celery worker`` processes (the farm's own settings: acks late, prefetch 1, JSON
only) on the embedded Redis run Celery's built-in ``celery.accumulate`` task (it returns its argument:
no work), routed like a base model (queue ``cpu``). Times come from Celery's task events (the workers
share this machine's clock):

* **enqueue to start**: one task at a time (sent, then waited for), from ``apply_async`` to the worker's
  ``task-started`` event;
* **chord join**: one chord at a time, 8 no-op header tasks and a no-op body, as a run's chord: from the
  last header task's end to the body's start;
* **throughput**: :data:`BURST` tasks sent at once, from the first send to the last task's end.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

from celery import chord

from bench.bars import latency_ms
from bench.timeline import EventLog, TaskSpan
from trainfarm.cli.output import console, print_table
from trainfarm.shared.connections import embedded_redis
from trainfarm.shared.settings import get_settings

WORKERS = 2
SINGLES = 300
CHORDS = 100
CHORD_SIZE = 8
BURST = 2000
NOOP = "celery.accumulate"
QUEUE = "cpu"
WAIT_S = 60.0


def _wait(events: EventLog, uuids: list[str], what: str) -> list[TaskSpan]:
    """The spans of ``uuids`` once all have ended (their events can trail the results by milliseconds)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        spans = [events.spans.get(u) for u in uuids]
        if all(s is not None and s.started is not None and s.ended is not None for s in spans):
            return [s for s in spans if s is not None]
        time.sleep(0.002)
    raise TimeoutError(f"bench overhead: no events for {what} within {WAIT_S:.0f} s")


def main() -> dict[str, object]:
    """Start the workers, measure, print and return the figures."""
    from trainfarm.cli.processes import WorkerProcess
    from trainfarm.workers.celery_app import app, rebind

    with tempfile.TemporaryDirectory(prefix="trainfarm-bench-") as tmp:
        os.environ["FARM_HOME"] = str(Path(tmp) / "home")
        get_settings.cache_clear()
        rebind()
        noop = app.tasks[NOOP]
        settings = get_settings()
        logs = settings.home / "logs"
        workers = [WorkerProcess(f"noop{i}", dict(os.environ), logs) for i in range(WORKERS)]
        events = EventLog(app)
        try:
            for worker in workers:
                worker.start()
            events.start()
            for _ in range(20):  # warm-up: connections, the pool processes' first task
                noop.apply_async((0,), queue=QUEUE).get(timeout=WAIT_S)

            starts = []
            for i in range(SINGLES):
                sent = time.time()
                result = noop.apply_async((i,), queue=QUEUE)
                result.get(timeout=WAIT_S)
                (span,) = _wait(events, [result.id], "a single task")
                assert span.started is not None
                starts.append(span.started - sent)

            joins = []
            for i in range(CHORDS):
                header = [noop.si(j).set(queue=QUEUE) for j in range(CHORD_SIZE)]
                result = chord(header)(noop.si(i).set(queue=QUEUE))
                result.get(timeout=WAIT_S)
                body = _wait(events, [result.id], "a chord body")[0]
                heads = _wait(events, [r.id for r in result.parent.results], "a chord header")
                assert body.started is not None
                joins.append(body.started - max(h.ended or 0.0 for h in heads))

            sent = time.time()
            # No result subscription per task (the farm's runs are followed through the registry too).
            burst = [noop.apply_async((i,), queue=QUEUE, ignore_result=True) for i in range(BURST)]
            spans = _wait(events, [r.id for r in burst], "the burst")
            burst_s = max(s.ended or 0.0 for s in spans) - sent
        finally:
            events.stop()
            for worker in workers:
                worker.stop()
            embedded_redis().stop()
            get_settings.cache_clear()

    start_stats, join_stats = latency_ms(starts, 2), latency_ms(joins, 2)
    rate = BURST / burst_s
    console.print(f"bench overhead: no-op tasks ({NOOP}) on {WORKERS} real workers, embedded Redis")
    print_table(
        "Celery + Redis per task (no-op tasks)",
        ["measure", "p50 ms", "p99 ms", "max ms", "n"],
        [
            ["enqueue -> start (one at a time)", *start_stats.values()],
            [f"chord join ({CHORD_SIZE} header tasks)", *join_stats.values()],
        ],
    )
    columns = ["tasks sent at once", "seconds", "tasks/s"]
    print_table("broker throughput", columns, [[BURST, round(burst_s, 2), round(rate)]])
    return {
        "workers": WORKERS,
        "enqueue_to_start": start_stats,
        "chord_join": join_stats,
        "throughput": {"tasks": BURST, "seconds": round(burst_s, 3), "tasks_per_s": round(rate, 1)},
    }


if __name__ == "__main__":
    main()
