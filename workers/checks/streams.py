"""Reading a Redis stream after a stored cursor: what the outcome and shadow ingestions share.

Both read their stream in batches strictly after the id kept under their cursor key, record the batch in
one registry transaction, and only then move the cursor (a crash in between re-reads duplicates only).
"""

from __future__ import annotations

from typing import Any

import redis


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


__all__ = ["cursor_of", "read_after", "text"]
