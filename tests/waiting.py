"""Waiting for something to happen: poll with a generous bound that fails naming what never happened.

A plain helper module (neither a test module nor a conftest). The bounds are deadlines against hangs, not
speed requirements: how fast things happen is measured by ``python -m bench``, never asserted by a test.
"""

from __future__ import annotations

import time
from collections.abc import Callable


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``condition`` every 20 ms; seconds it took, or an AssertionError naming ``what``."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(0.02)
    return time.monotonic() - started
