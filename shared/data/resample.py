"""Resampling stored bars (5m, 1h or 1d) to the farm's timeframes.

A bar of timeframe T covers [t, t + T) with t aligned to UTC midnight (so 12h bars open at 00:00 and
12:00, 24h bars at 00:00, as exchanges publish them): open = first open, high = max, low = min,
close = last close, volume = sum. ``bars`` counts the 5-minute slots the stored bars inside cover (a 1h bar
counts 12), so callers can see a bar that an outage left partial whatever interval it was built from.
Buckets with no stored bar at all produce no row: a gap stays a gap, never a filled bar.
The first and last buckets are dropped when they are incomplete because the data starts or ends inside
them (the newest bar of a live series is still forming).
"""

from __future__ import annotations

import polars as pl

from trainfarm.shared.data.intervals import BarInterval
from trainfarm.shared.timeframes import Timeframe

OHLCV = ("open", "high", "low", "close", "volume")


def resample(
    bars: pl.DataFrame, timeframe: Timeframe, interval: BarInterval = BarInterval.M5
) -> pl.DataFrame:
    """Aggregate sorted ``bars`` (date, open, high, low, close, volume) of ``interval`` to ``timeframe``.

    Returns the columns date, open, high, low, close, volume, bars. Where the timeframe is the interval, the
    input comes back with ``bars`` = the interval's 5-minute slots. ``interval`` must divide ``timeframe``.
    """
    if not interval.serves(timeframe):
        raise ValueError(f"{interval} bars cannot be aggregated into {timeframe} bars")
    if timeframe.minutes == interval.minutes:
        return bars.select("date", *OHLCV).with_columns(bars=pl.lit(interval.base_bars, dtype=pl.UInt32))
    if bars.is_empty():
        return bars.select("date", *OHLCV).with_columns(bars=pl.lit(1, dtype=pl.UInt32)).clear()
    every = f"{timeframe.minutes}m"
    out = (
        bars.group_by_dynamic("date", every=every, closed="left", label="left", start_by="window")
        .agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
            (pl.len() * interval.base_bars).cast(pl.UInt32).alias("bars"),
            pl.col("date").min().alias("_first"),
            pl.col("date").max().alias("_last"),
        )
        .sort("date")
    )
    span = timeframe.duration
    base = interval.duration
    first_bucket_open = out["date"][0] if out.height else None
    # Leading bucket incomplete: the data starts after the bucket opened.
    leading_partial = (pl.col("date") == first_bucket_open) & (pl.col("_first") > pl.col("date"))
    # Trailing bucket incomplete: the data ends before the bucket's last slot.
    last_bucket_open = out["date"][-1] if out.height else None
    trailing_partial = (pl.col("date") == last_bucket_open) & (pl.col("_last") < pl.col("date") + span - base)
    return out.filter(~(leading_partial | trailing_partial)).drop("_first", "_last")
