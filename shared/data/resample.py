"""Resampling 5-minute bars to the farm's timeframes.

A bar of timeframe T covers [t, t + T) with t aligned to UTC midnight (so 12h bars open at 00:00 and
12:00, 24h bars at 00:00, as exchanges publish them): open = first open, high = max, low = min,
close = last close, volume = sum. ``bars`` counts the 5m bars inside, so callers can see a bar that an
outage left partial. Buckets with no 5m bar at all produce no row: a gap stays a gap, never a filled bar.
The first and last buckets are dropped when they are incomplete because the data starts or ends inside
them (the newest bar of a live series is still forming).
"""

from __future__ import annotations

import polars as pl

from trainfarm.shared.timeframes import BASE_TIMEFRAME, Timeframe

OHLCV = ("open", "high", "low", "close", "volume")


def resample(bars: pl.DataFrame, timeframe: Timeframe) -> pl.DataFrame:
    """Aggregate sorted 5m ``bars`` (date, open, high, low, close, volume) to ``timeframe``.

    Returns the columns date, open, high, low, close, volume, bars. For 5m, the input comes back with
    ``bars`` = 1.
    """
    if timeframe is BASE_TIMEFRAME:
        return bars.select("date", *OHLCV).with_columns(bars=pl.lit(1, dtype=pl.UInt32))
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
            pl.len().cast(pl.UInt32).alias("bars"),
            pl.col("date").min().alias("_first"),
            pl.col("date").max().alias("_last"),
        )
        .sort("date")
    )
    span = timeframe.duration
    base = BASE_TIMEFRAME.duration
    first_bucket_open = out["date"][0] if out.height else None
    # Leading bucket incomplete: the data starts after the bucket opened.
    leading_partial = (pl.col("date") == first_bucket_open) & (pl.col("_first") > pl.col("date"))
    # Trailing bucket incomplete: the data ends before the bucket's last 5m slot.
    last_bucket_open = out["date"][-1] if out.height else None
    trailing_partial = (pl.col("date") == last_bucket_open) & (pl.col("_last") < pl.col("date") + span - base)
    return out.filter(~(leading_partial | trailing_partial)).drop("_first", "_last")
