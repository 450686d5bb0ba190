"""Reading a Redis stream after a stored cursor: what the outcome and shadow ingestions share.

Both read their stream in batches strictly after the id kept under their cursor key, record the batch in
one registry transaction, and only then move the cursor (a crash in between re-reads duplicates only).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import redis

T = TypeVar("T")


def text(value: object) -> str:
    """A Redis reply part as text (bytes decoded)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def read_after(client: redis.Redis, stream: str, cursor: str, count: int) -> list[tuple[str, dict[str, str]]]:
    """Up to ``count`` entries of ``stream`` strictly after ``cursor`` (XREAD: any Redis version, no
    blocking), each as (id, {field: value})."""
    answer: Any = client.xread({stream: cursor}, count=count)
    if not answer:
        return []
    # RESP2 gives [[stream, entries]], RESP3 {stream: entries}; entries are [(id, {field: value})].
    entries = next(iter(answer.values())) if isinstance(answer, dict) else answer[0][1]
    return [(text(i), {text(k): text(v) for k, v in (f or {}).items()}) for i, f in entries]


def cursor_of(client: redis.Redis, key: str) -> str:
    """The stored cursor under ``key``, or the stream's start."""
    return text(client.get(key) or "0-0")


@dataclass(frozen=True)
class Drained:
    """What one :func:`drain` call did: entries read, entries skipped as malformed, the cursor now."""

    read: int
    malformed: int
    cursor: str


def drain(
    client: redis.Redis,
    stream: str,
    cursor_key: str,
    parse: Callable[[str, Mapping[str, str]], T],
    record: Callable[[list[T]], None],
    *,
    batch: int,
    max_batches: int,
    log: logging.Logger,
) -> Drained:
    """Read ``stream`` after the cursor under ``cursor_key`` in batches of ``batch`` (at most
    ``max_batches``), ``parse`` each entry (a ``ValueError`` naming it: logged, counted, skipped),
    ``record`` each batch's parsed entries (one transaction), and only then move the cursor.

    A skipped entry is logged on the caller's ``log``, so each ingestion's errors carry its own logger
    name (what an operator filters on)."""
    cursor = cursor_of(client, cursor_key)
    read = malformed = 0
    for _ in range(max_batches):  # bounded: the next call picks up whatever is left
        entries = read_after(client, stream, cursor, batch)
        if not entries:
            break
        parsed = []
        for entry_id, fields in entries:
            try:
                parsed.append(parse(entry_id, fields))
            except ValueError as exc:
                malformed += 1
                log.error("%s; skipped", exc)
        if parsed:
            record(parsed)
        cursor = entries[-1][0]
        client.set(cursor_key, cursor)  # after the commit: a crash before this re-reads duplicates only
        read += len(entries)
    return Drained(read, malformed, cursor)


__all__ = ["Drained", "cursor_of", "drain", "read_after", "text"]
