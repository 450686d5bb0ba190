"""Waiting for something to happen: poll with a generous bound that fails naming what never happened.

The tests' one wait helper (the product's own, :func:`trainfarm.cli.processes.wait_for`, is for the CLI).
The bounds are deadlines against hangs, not speed requirements: how fast things happen is measured by
``python -m bench``, never asserted by a test.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from trainfarm.cli.processes import ChildProcess

#: How much of a process's log a failure shows.
LOG_TAIL_CHARS = 4000


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    *,
    process: ChildProcess | None = None,
    every: float = 0.02,
) -> float:
    """Poll ``condition`` every ``every`` seconds; the seconds it took, or an AssertionError naming ``what``.

    With ``process`` (the worker or beat the condition waits on), the wait fails as soon as it exits,
    and either failure shows the end of its log. The waits on runs and processes poll every 0.25 s: a run
    recorded as ended in the registry may not have its Celery result stored yet.
    """
    started = time.monotonic()
    while not condition():
        if process is not None and not process.alive():
            raise AssertionError(
                f"{process.name} exited while waiting for {what}:\n{process.log()[-LOG_TAIL_CHARS:]}"
            )
        if time.monotonic() - started > timeout:
            tail = process.log()[-LOG_TAIL_CHARS:] if process is not None else ""
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}\n{tail}".rstrip())
        time.sleep(every)
    return time.monotonic() - started
