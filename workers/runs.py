"""Run coordination: one active run per market, one meta stage per run, bounded redeliveries, the reaper.

Plain functions over the registry and a redis-py client (no Celery here): the tasks call them. How a run
is claimed and travels through Celery: docs/architecture.md#one-retrain-run.

* **One active run per (symbol, timeframe)**: the registry's unique index on active runs is the one source
  of truth, so there is no time-to-live for a long queue wait to outlast.
* **The reaper**: a run whose work is provably gone (not one of its messages is queued, reserved or running,
  seen twice) is failed, so that its market can run again. With ``acks_late`` every task of a live run
  keeps its message in a queue or in the broker's unacknowledged set until it has finished, and each
  stage publishes the next one's messages before its own is acknowledged: a live run always has one.
* **Task ids** start with the run id: ``<run>-prepare``, ``<run>-<model>``, ``<run>-meta`` for a full run,
  ``<run>-metaonly`` for a meta-only one (:mod:`trainfarm.workers.meta_runs`).
* **Meta guard** ``farm:run:<id>:meta``: SET NX by the first meta task of a run; a second delivery of the
  chord body (a duplicated header can fire it twice) finds the guard and does nothing.
* **Delivery counter** ``farm:deliveries:<task id>``: INCR on every start of a task; past the cap the task
  fails for good instead of killing worker after worker (poison message).
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import redis

from trainfarm.shared.champions.publish import record_failure
from trainfarm.shared.connections import redis_connection
from trainfarm.shared.errors import FarmError, HeaderResultError, MissingHeaderResultError, TransientError
from trainfarm.shared.registry import Registry, RunKind, RunRecord, utc_now
from trainfarm.shared.settings import get_settings
from trainfarm.workers.routing import QUEUES

#: A run younger than this is never reaped: its first message may not be published yet (a trigger inserts
#: the run, then enqueues it).
REAP_GRACE = timedelta(seconds=60)
#: The two looks at the broker are this far apart, so that a message moving between a queue and the
#: unacknowledged set (a worker taking it) is seen in one of them.
_SECOND_LOOK_S = 0.5

# kombu's Redis transport keeps each queue as a list named after it, plus one list per priority step
# ("<queue>\x06\x16<step>"), and every delivered, unacknowledged message in the hash "unacked".
_PRIORITY_SEP = "\x06\x16"
_PRIORITY_STEPS = (0, 3, 6, 9)
_UNACKED = "unacked"
_SCAN_CHUNK = 500


@dataclass(frozen=True)
class Submitted:
    """What `farm retrain`, beat's fan-outs and the triggers report for one (symbol, timeframe)."""

    run_id: str  #: empty when ``skipped``
    symbol: str
    timeframe: str
    merged: bool  #: True when an active run already covered this trigger
    kind: RunKind = RunKind.FULL  #: the kind of the run (a merged request gets the active run's)
    skipped: str | None = None  #: why no run was asked for (a meta-only retrain that is not due)


def run_dir(run_id: str) -> Path:
    """Staging folder of one run (base models and their predictions; never read by bots)."""
    return get_settings().runs_dir / run_id


def claim_run(
    symbol: str,
    timeframe: str,
    reason: str,
    *,
    registry: Registry | None = None,
    kind: RunKind = RunKind.FULL,
) -> Submitted:
    """The market's active run: a new queued run of ``kind``, or the one already under way (``merged``).

    An active run whose work is provably gone (see :func:`run_is_abandoned`) is failed first, so a lost
    message never blocks its market for good.
    """
    registry = registry or Registry.open()
    for _ in range(3):  # bounded: each pass creates, merges, or reaps one abandoned run
        run, created = registry.runs.claim(symbol, timeframe, reason, kind=kind)
        if created:
            return Submitted(run.id, run.symbol, run.timeframe, merged=False, kind=run.kind)
        if not run_is_abandoned(run):
            return Submitted(run.id, run.symbol, run.timeframe, merged=True, kind=run.kind)
        reap(run, f"reaped when a new run was asked for ({reason})", registry=registry)
    raise FarmError(f"could not claim a run of {symbol} {timeframe}; try again")


def run_is_abandoned(run: RunRecord, *, client: redis.Redis | None = None) -> bool:
    """True when ``run`` is active, older than :data:`REAP_GRACE`, and the broker holds none of its messages.

    The broker is looked at twice, :data:`_SECOND_LOOK_S` apart; a message seen in either look keeps the
    run alive.
    """
    if run.status.terminal or utc_now() - run.created_at < REAP_GRACE:
        return False
    with redis_connection(decode_responses=False, client=client) as conn:
        if broker_holds_run(conn, run.id):
            return False
        time.sleep(_SECOND_LOOK_S)
        return not broker_holds_run(conn, run.id)


def broker_holds_run(client: redis.Redis, run_id: str, queues: Sequence[str] = QUEUES) -> bool:
    """Whether any message of ``run_id`` is queued or delivered-but-unacknowledged in the broker.

    Every task of a run has a task id that starts with the run id (``<run>-prepare``, ``<run>-<model>``,
    ``<run>-meta``; retries keep their id), and kombu stores the id in each message's headers.
    """
    needle = run_id.encode()
    for queue in queues:
        for step in _PRIORITY_STEPS:
            key = queue if step == 0 else f"{queue}{_PRIORITY_SEP}{step}"
            if any(needle in _bytes(m) for m in _list_chunks(client, key)):
                return True
    return any(needle in _bytes(m) for m in client.hvals(_UNACKED))


def queue_depths(client: redis.Redis, queues: Sequence[str] = QUEUES) -> dict[str, int]:
    """Messages waiting in each queue (every priority step of it), not counting delivered ones."""

    def key(queue: str, step: int) -> str:
        return queue if step == 0 else f"{queue}{_PRIORITY_SEP}{step}"

    return {q: sum(int(client.llen(key(q, step))) for step in _PRIORITY_STEPS) for q in queues}


def reap(run: RunRecord, why: str, *, registry: Registry | None = None) -> bool:
    """Fail an abandoned run; True when this call failed it (it had not ended meanwhile)."""
    error = (
        "abandoned: none of its tasks is queued, reserved or running any more (the broker lost them, "
        f"or they were purged); {why}"
    )
    return record_run_failure(run.id, error, failed_model=None, registry=registry)


def reap_abandoned_runs(*, registry: Registry | None = None) -> list[str]:
    """Fail every active run whose work is provably gone; returns their ids (for a periodic check)."""
    registry = registry or Registry.open()
    return [
        run.id
        for run in registry.runs.all_active()
        if run_is_abandoned(run) and reap(run, "found by the reaper", registry=registry)
    ]


def record_run_failure(
    run_id: str, error: str, *, failed_model: str | None, registry: Registry | None = None
) -> bool:
    """Mark a run failed, announce it and free its staging folder, once: True for the call that did it.

    A run that has ended already (it failed, or it succeeded and a late task is complaining) is left as it
    is and nothing is announced: each run's outcome is recorded and announced exactly once.
    """
    registry = registry or Registry.open()
    if not registry.runs.fail(run_id, error, failed_model=failed_model):
        return False
    shutil.rmtree(run_dir(run_id), ignore_errors=True)
    # The registry holds the failure; the events stream is history, not the source of truth.
    with contextlib.suppress(TransientError):
        record_failure(registry.runs.get(run_id))
    return True


def claim_meta(client: redis.Redis, run_id: str, task_id: str, ttl_s: int) -> bool:
    """True for the first meta task of ``run_id`` (or a redelivery of that same task), False otherwise."""
    key = f"farm:run:{run_id}:meta"
    if client.set(key, task_id, nx=True, ex=ttl_s):
        return True
    holder = client.get(key)
    return holder is not None and _text(holder) == task_id


def count_delivery(client: redis.Redis, task_id: str, ttl_s: int) -> int:
    """Count one more start of ``task_id`` and return the total."""
    key = _delivery_key(task_id)
    pipe = client.pipeline()
    pipe.incr(key)
    pipe.expire(key, ttl_s)
    count, _ = pipe.execute()
    return int(count)


def deliveries(client: redis.Redis, task_id: str) -> int:
    """How often ``task_id`` has started so far (0 when never, or when its counter expired)."""
    value = client.get(_delivery_key(task_id))
    return int(value) if value is not None else 0


def _delivery_key(task_id: str) -> str:
    return f"farm:deliveries:{task_id}"


def one_result_per_model(
    results: Iterable[dict[str, object]], expected: Sequence[str]
) -> dict[str, dict[str, object]]:
    """Index the chord header's results by model, insisting on each expected model exactly once.

    Identical duplicates (the same task delivered twice returns the same deterministic reference) are
    folded into one; two different results for one model or an unknown model is a
    :class:`HeaderResultError`; missing models are a :class:`MissingHeaderResultError`.
    """
    by_model: dict[str, dict[str, object]] = {}
    for result in results:
        model = result.get("model") if isinstance(result, dict) else None
        if not isinstance(model, str):
            raise HeaderResultError(f"a base-model result has no model name: {result!r:.200}")
        if model not in expected:
            raise HeaderResultError(f"unexpected base model {model!r}; expected {', '.join(expected)}")
        if model in by_model and by_model[model] != result:
            raise HeaderResultError(f"two different results for base model {model!r}")
        by_model[model] = result
    missing = [m for m in expected if m not in by_model]
    if missing:
        raise MissingHeaderResultError(f"missing base-model result(s): {', '.join(missing)}")
    return by_model


def _list_chunks(client: redis.Redis, key: str) -> Iterable[object]:
    start = 0
    while True:  # bounded by the list's length: each pass reads the next chunk, an empty one ends it
        chunk = client.lrange(key, start, start + _SCAN_CHUNK - 1)
        yield from chunk
        if len(chunk) < _SCAN_CHUNK:
            return
        start += _SCAN_CHUNK


def _bytes(value: object) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
