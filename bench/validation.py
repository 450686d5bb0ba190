"""`python -m bench validation`: how fast :func:`validate_bars` checks 400k real 5m bars.

Two cases: the whole history passes (every rule scans every row), and the same bars with the last row
broken (the worst case for finding and naming the first offending row). The tests check what is found;
only this measures how fast.
"""

from __future__ import annotations

import polars as pl

from bench.bars import rate_row, real_bars
from trainfarm.cli.output import console, print_table
from trainfarm.shared.data.validation import validate_bars
from trainfarm.shared.errors import DataError


def _broken_last_row(bars: pl.DataFrame) -> pl.DataFrame:
    """``bars`` with the last row's low above its high."""
    last = pl.int_range(pl.len()) == bars.height - 1
    return bars.with_columns(pl.when(last).then(pl.col("high") + 1).otherwise(pl.col("low")).alias("low"))


def main() -> dict[str, object]:
    bars, source = real_bars()
    broken = _broken_last_row(bars)
    console.print(f"bench validation: {bars.height} bars from {source}")

    def refuse() -> None:
        try:
            validate_bars(broken, file="bench", min_rows=288)
        except DataError as exc:
            assert f"row {bars.height}:" in str(exc), exc
        else:
            raise AssertionError("the broken last row was not found")

    rows = []
    for case, work in (
        ("valid", lambda: validate_bars(bars, file="bench", min_rows=288)),
        ("last row broken", refuse),
    ):
        rows.append(rate_row(case, bars.height, work))
    columns = ["case", "rows", "best ms", "median ms", "rows/s"]
    print_table("validate_bars on real 5m bars", columns, rows)
    return {"source": source, "cases": [dict(zip(columns, r, strict=True)) for r in rows]}


if __name__ == "__main__":
    main()
