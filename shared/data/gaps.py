"""Gaps in a bar series: where bars are missing, and the segments between long gaps.

Real exchange data has outages (BTC misses 16 bars on 2023-03-24 and all of 2023-12-31; SOL misses
December 2024). The farm reports every gap and never fills one: instead, a gap longer than the timeframe's
``max_gap_bars`` starts a new *segment*, and no feature window or label reaches across a segment boundary.
The segment id (:func:`segment_expr`) lives with the features in :mod:`trainfarm_client.features`, because
bots segment their bars with the same code; it is re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from trainfarm_client.features import segment_expr

__all__ = ["Gap", "find_gaps", "segment_expr"]


@dataclass(frozen=True)
class Gap:
    """Bars missing between two consecutive bars that exist."""

    after: datetime  #: last bar before the gap
    before: datetime  #: first bar after the gap
    missing: int  #: number of bars that should exist in between

    def to_json(self) -> dict[str, object]:
        return {"after": self.after.isoformat(), "before": self.before.isoformat(), "missing": self.missing}


def find_gaps(dates: pl.Series, interval: timedelta) -> list[Gap]:
    """Every place where consecutive ``dates`` (sorted) are more than one ``interval`` apart."""
    frame = pl.DataFrame({"before": dates}).with_columns(after=pl.col("before").shift(1))
    step = pl.col("before") - pl.col("after")
    # Whole milliseconds on both sides: polars refuses // between durations of different units.
    interval_ms = int(interval.total_seconds() * 1000)
    missing = step.dt.total_milliseconds() // interval_ms - 1
    holes = frame.filter(step > interval).with_columns(missing=missing.cast(pl.Int64))
    return [
        Gap(after=r["after"], before=r["before"], missing=r["missing"]) for r in holes.iter_rows(named=True)
    ]
