"""Resampling real BTC 5m bars, pinned to numbers computed by hand from the raw rows.

Each expected bar below was computed once by aggregating the raw 5m rows of the bundled sample in plain
Python (first open, max high, min low, last close, summed volume, row count); the test repeats that
computation and also pins the literal numbers, so a change in the data or in either computation shows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from trainfarm.shared.data.resample import resample
from trainfarm.shared.timeframes import Timeframe

Row = dict[str, Any]


@pytest.fixture(scope="module")
def btc(sample_dir: Path) -> pl.DataFrame:
    return pl.read_parquet(sample_dir / "BTC_USDT-5m.parquet")


@pytest.fixture(scope="module")
def raw_rows(btc: pl.DataFrame) -> list[Row]:
    return list(btc.iter_rows(named=True))


def by_hand(rows: list[Row], start: datetime, timeframe: Timeframe) -> tuple[float, ...] | None:
    """The bar of ``timeframe`` opening at ``start``, aggregated in plain Python; None without rows."""
    inside = [r for r in rows if start <= r["date"] < start + timeframe.duration]
    if not inside:
        return None
    return (
        inside[0]["open"],
        max(r["high"] for r in inside),
        min(r["low"] for r in inside),
        inside[-1]["close"],
        sum(r["volume"] for r in inside),
        len(inside),
    )


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


# (timeframe, bar open, (open, high, low, close, volume, bars)); see the module docstring.
EXPECTED = [
    (Timeframe.H1, utc(2023, 3, 2, 13), (23354.61, 23412.0, 23236.0, 23308.95, 17949.99508, 12)),
    (Timeframe.H12, utc(2023, 3, 2, 12), (23414.73, 23567.52, 23195.9, 23465.32, 140411.93748, 144)),
    # The outage day: 16 bars missing from 12:40 to 13:55, so the day has 272 bars and is kept.
    (Timeframe.D1, utc(2023, 3, 24), (28295.42, 28374.3, 27000.0, 27454.47, 86242.06544, 272)),
    (Timeframe.H12, utc(2023, 3, 24, 12), (28080.0, 28253.01, 27000.0, 27454.47, 53787.20334, 128)),
    # The hour the outage began: eight flat, zero-volume bars.
    (Timeframe.H1, utc(2023, 3, 24, 12), (28080.0, 28080.0, 28080.0, 28080.0, 0.0, 8)),
    # The day before the missing 2023-12-31 lacks its 23:55 bar.
    (Timeframe.D1, utc(2023, 12, 30), (42066.94, 42612.32, 41520.3, 42206.47, 22860.3003, 287)),
    (Timeframe.H12, utc(2023, 12, 30, 12), (41893.96, 42612.32, 41882.71, 42206.47, 12599.74916, 143)),
]


def assert_bar(actual: tuple[Any, ...], expected: tuple[float, ...]) -> None:
    assert actual[:4] == expected[:4]  # prices are picked, never computed: exact
    assert actual[4] == pytest.approx(expected[4], rel=1e-12)  # summation order may differ
    assert actual[5] == expected[5]


@pytest.mark.parametrize(("timeframe", "start", "expected"), EXPECTED, ids=lambda v: str(v)[:19])
def test_bars_match_hand_computed_values(
    btc: pl.DataFrame, raw_rows: list[Row], timeframe: Timeframe, start: datetime, expected: tuple[float, ...]
) -> None:
    hand = by_hand(raw_rows, start, timeframe)
    assert hand is not None
    assert_bar(hand, expected)
    out = resample(btc, timeframe).filter(pl.col("date") == start)
    assert out.height == 1
    assert_bar(out.row(0)[1:], expected)


@pytest.mark.parametrize(
    ("timeframe", "start"),
    [
        (Timeframe.H1, utc(2023, 3, 24, 13)),
        (Timeframe.D1, utc(2023, 12, 31)),
        *((Timeframe.H1, utc(2023, 12, 31, hour)) for hour in (0, 12, 23)),
        (Timeframe.H12, utc(2023, 12, 31, 12)),
    ],
)
def test_a_bucket_without_bars_has_no_row(
    btc: pl.DataFrame, raw_rows: list[Row], timeframe: Timeframe, start: datetime
) -> None:
    assert by_hand(raw_rows, start, timeframe) is None
    assert resample(btc, timeframe).filter(pl.col("date") == start).is_empty()


def test_no_row_at_all_on_the_missing_day(btc: pl.DataFrame) -> None:
    hourly = resample(btc, Timeframe.H1)
    assert hourly.filter(pl.col("date").dt.date() == utc(2023, 12, 31).date()).is_empty()


@pytest.mark.parametrize(
    ("timeframe", "rows"),
    # 366 days; missing: one hour on 2023-03-24 and the whole of 2023-12-31 (partial buckets are kept).
    [(Timeframe.H1, 366 * 24 - 1 - 24), (Timeframe.H12, 366 * 2 - 2), (Timeframe.D1, 366 - 1)],
)
def test_bucket_counts_and_every_5m_bar_is_used(btc: pl.DataFrame, timeframe: Timeframe, rows: int) -> None:
    out = resample(btc, timeframe)
    assert out.height == rows
    assert out["bars"].sum() == btc.height
    assert out["bars"].max() == timeframe.base_bars
    assert out["date"].is_sorted() and out["date"].is_unique().all()


def test_incomplete_leading_and_trailing_buckets_are_dropped(btc: pl.DataFrame) -> None:
    start, end = utc(2023, 3, 2, 13, 30), utc(2023, 3, 3, 12, 25)  # end exclusive: last bar 12:20
    window = btc.filter((pl.col("date") >= start) & (pl.col("date") < end))
    hourly = resample(window, Timeframe.H1)
    assert hourly["date"][0] == utc(2023, 3, 2, 14)
    assert hourly["date"][-1] == utc(2023, 3, 3, 11)
    assert set(hourly["bars"].to_list()) == {12}
    assert resample(window, Timeframe.H12)["date"].to_list() == [utc(2023, 3, 3)]
    assert resample(window, Timeframe.D1).is_empty()


def test_5m_comes_back_unchanged_with_bars_1(btc: pl.DataFrame) -> None:
    out = resample(btc.head(100), Timeframe.M5)
    assert out.drop("bars").equals(btc.head(100))
    assert out["bars"].unique().to_list() == [1]
