"""Hand-built 5m bar frames for the data-layer tests, and the types of their fixtures.

A plain helper module (neither a test module nor a conftest): ``tests/unit/data/conftest.py`` and the
test modules import from it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import polars as pl

from trainfarm.shared.errors import DataError

#: First bar of the hand-built frames.
START = datetime(2024, 1, 1, tzinfo=UTC)
#: Small enough for hand-built frames; the row minimum itself is tested with its own value.
MIN_ROWS = 5

MakeBars = Callable[..., pl.DataFrame]
Snapshot = Callable[[Path], dict[str, bytes | None]]


class Refused(Protocol):
    def __call__(
        self, frame: pl.DataFrame, *, column: str | None, row: int | None, says: str
    ) -> DataError: ...


def build_bars(n: int = 12, start: datetime = START) -> pl.DataFrame:
    """``n`` valid consecutive 5m bars: open 100+i, close open+0.5, high close+1, low open-1."""
    opens = [100.0 + i for i in range(n)]
    return pl.DataFrame(
        {
            "date": [start + timedelta(minutes=5 * i) for i in range(n)],
            "open": opens,
            "high": [o + 1.5 for o in opens],
            "low": [o - 1.0 for o in opens],
            "close": [o + 0.5 for o in opens],
            "volume": [10.0 + i for i in range(n)],
        },
        schema={
            "date": pl.Datetime("ms", "UTC"),
            "open": pl.Float64,
            "high": pl.Float64,
            "low": pl.Float64,
            "close": pl.Float64,
            "volume": pl.Float64,
        },
    )


def set_value(frame: pl.DataFrame, column: str, row: int, value: object) -> pl.DataFrame:
    """Copy of ``frame`` with the 1-based ``row`` of ``column`` set to ``value``."""
    index = pl.int_range(pl.len()) == row - 1
    dtype = frame.schema[column]
    return frame.with_columns(
        pl.when(index).then(pl.lit(value, dtype=dtype)).otherwise(pl.col(column)).alias(column)
    )


def tree(root: Path) -> dict[str, bytes | None]:
    """Every file and folder under ``root``, with file bytes (None for folders); {} when absent."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))
    }
