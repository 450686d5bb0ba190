"""Real 5m bars for the data benchmarks: BTC's whole history from ../shared/data, or the bundled sample.

``../shared/data/BTC_USDT-5m.parquet`` (over 400k rows) is used when it is there. Without it the bundled
BTC sample (105k rows) is repeated end to end, each copy moved later by the span of the sample, until the
frame has as many rows: still real bars, on the 5-minute grid, in ascending order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from trainfarm.cli.demo.sample_data import SAMPLE_DIR
from trainfarm.shared.data.readers import read_bars

#: ``../shared/data`` beside the repository: the real bars of BTC, ETH and SOL (its README).
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SHARED_BTC = SHARED_DATA / "BTC_USDT-5m.parquet"
ROWS = 400_000
REPEATS = 5


def bar_file(symbol: str) -> Path:
    """``symbol``'s 5m bars in ``../shared/data``, or the bundled sample's when that file is absent."""
    shared = SHARED_DATA / f"{symbol}-5m.parquet"
    return shared if shared.is_file() else SAMPLE_DIR / f"{symbol}-5m.parquet"


def latency_ms(seconds: Sequence[float], digits: int) -> dict[str, float | int]:
    """p50, p99 and max of ``seconds`` in milliseconds (rounded to ``digits``), and how many."""
    ms = np.asarray(seconds, dtype=np.float64) * 1000
    return {
        "p50_ms": round(float(np.percentile(ms, 50)), digits),
        "p99_ms": round(float(np.percentile(ms, 99)), digits),
        "max_ms": round(float(ms.max()), digits),
        "n": len(ms),
    }


def real_bars(rows: int = ROWS) -> tuple[pl.DataFrame, str]:
    """At least ``rows`` real 5m bars, and where they come from."""
    if SHARED_BTC.is_file():
        bars = read_bars(SHARED_BTC)
        if bars.height >= rows:
            return bars, str(SHARED_BTC)
    sample = read_bars(SAMPLE_DIR / "BTC_USDT-5m.parquet")
    first, last = sample["date"].min(), sample["date"].max()
    assert isinstance(first, datetime) and isinstance(last, datetime)
    span = last - first + timedelta(minutes=5)
    copies = -(-rows // sample.height)
    bars = pl.concat([sample.with_columns(pl.col("date") + span * i) for i in range(copies)])
    return bars, f"{SAMPLE_DIR / 'BTC_USDT-5m.parquet'} x{copies} (../shared/data is absent)"


def timed(work: Callable[[], object], repeats: int = REPEATS) -> tuple[float, float]:
    """Best and median seconds of ``repeats`` calls of ``work`` (after one untimed warm-up call)."""
    work()
    seconds = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        seconds.append(time.perf_counter() - started)
    seconds.sort()
    return seconds[0], seconds[len(seconds) // 2]


def rate_row(label: str, rows: int, work: Callable[[], object]) -> list[object]:
    """One table row for ``work`` over ``rows`` rows: label, rows, best and median ms, rows/s (best)."""
    best, median = timed(work)
    return [label, rows, round(best * 1000, 1), round(median * 1000, 1), round(rows / best)]
