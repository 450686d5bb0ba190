"""Run coordination through Redis: one run per (symbol, timeframe) at a time, one meta stage per run.

Plain functions over a redis-py client (no Celery here): the Celery tasks in ``workers`` call them.

* Run slot ``farm:run-slot:<S>:<T>``: SET NX with the run id. Concurrent triggers merge into the run that
  holds the slot; the slot is released (compare-and-delete) when the run ends, and expires after the
  longest a run may take, so a crashed run cannot block its (S, T) forever.
* Meta guard ``farm:run:<id>:meta``: SET NX by the first meta task of a run; a second delivery of the
  chord body (a duplicated header can fire it twice) finds the guard and does nothing.
* Delivery counter ``farm:deliveries:<task id>``: INCR on every start of a task; past the cap the task
  fails for good instead of killing worker after worker (poison message).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis

from trainfarm.shared.errors import FarmError

_RELEASE = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


class HeaderResultError(FarmError):
    """The meta stage did not receive each base model's result exactly once (chord misfire).

    Handled by: the meta task, which fails the run with this message; never retried as-is.
    """


def slot_key(symbol: str, timeframe: str) -> str:
    return f"farm:run-slot:{symbol}:{timeframe}"


@dataclass(frozen=True)
class SlotClaim:
    """Outcome of asking for a (symbol, timeframe) run slot."""

    run_id: str  #: the run that holds the slot now
    acquired: bool  #: True when that is the caller's new run; False when it merged into a running one


def claim_slot(client: redis.Redis, symbol: str, timeframe: str, run_id: str, ttl_s: int) -> SlotClaim:
    """Take the slot for ``run_id``, or return the run already holding it."""
    key = slot_key(symbol, timeframe)
    for _ in range(5):  # bounded: only a holder expiring between SET and GET makes us go round
        if client.set(key, run_id, nx=True, ex=ttl_s):
            return SlotClaim(run_id, True)
        holder = client.get(key)
        if holder is not None:
            return SlotClaim(_text(holder), False)
    return SlotClaim(run_id, bool(client.set(key, run_id, nx=True, ex=ttl_s)))


def release_slot(client: redis.Redis, symbol: str, timeframe: str, run_id: str) -> bool:
    """Free the slot if ``run_id`` still holds it (never frees a newer run's slot)."""
    return bool(client.eval(_RELEASE, 1, slot_key(symbol, timeframe), run_id))


def slot_holder(client: redis.Redis, symbol: str, timeframe: str) -> str | None:
    """The run id holding the slot, if any."""
    holder = client.get(slot_key(symbol, timeframe))
    return _text(holder) if holder is not None else None


def slot_age_s(client: redis.Redis, symbol: str, timeframe: str, ttl_s: int) -> float | None:
    """Seconds since the slot was claimed (from its remaining TTL); None when free or without a TTL."""
    remaining_ms = int(client.pttl(slot_key(symbol, timeframe)))
    if remaining_ms < 0:  # -2: no such key; -1: a key without expiry (not set by claim_slot)
        return None
    return max(0.0, ttl_s - remaining_ms / 1000)


def claim_meta(client: redis.Redis, run_id: str, task_id: str, ttl_s: int) -> bool:
    """True for the first meta task of ``run_id`` (or a redelivery of that same task), False otherwise."""
    key = f"farm:run:{run_id}:meta"
    if client.set(key, task_id, nx=True, ex=ttl_s):
        return True
    holder = client.get(key)
    return holder is not None and _text(holder) == task_id


def count_delivery(client: redis.Redis, task_id: str, ttl_s: int) -> int:
    """Count one more start of ``task_id`` and return the total."""
    key = f"farm:deliveries:{task_id}"
    pipe = client.pipeline()
    pipe.incr(key)
    pipe.expire(key, ttl_s)
    count, _ = pipe.execute()
    return int(count)


def one_result_per_model(
    results: Iterable[dict[str, object]], expected: Sequence[str]
) -> dict[str, dict[str, object]]:
    """Index the chord header's results by model, insisting on each expected model exactly once.

    Identical duplicates (the same task delivered twice returns the same deterministic reference) are
    folded into one; two different results for one model, an unknown model or a missing one is an error.
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
        raise HeaderResultError(f"missing base-model result(s): {', '.join(missing)}")
    return by_model


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
