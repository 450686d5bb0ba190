"""Running work concurrently in tests: threads released together, registries with their own engine.

A plain helper module (neither a test module nor a conftest): test modules import from it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from trainfarm.shared.registry import Registry, create_registry_engine

T = TypeVar("T")


def in_threads(count: int, work: Callable[[int], T]) -> list[T]:
    """Run ``work(i)`` in ``count`` threads released together; re-raise the first error."""
    barrier = threading.Barrier(count)
    results: list[T | None] = [None] * count
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except BaseException as exc:  # collected, re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if errors:
        raise errors[0]
    return [r for r in results if r is not None]


def on_own_engine(url: str, work: Callable[[Registry], T]) -> T:
    """``work`` on a registry with its own engine (own connections), as a separate worker process has."""
    with Registry(create_registry_engine(url)) as registry:
        return work(registry)
