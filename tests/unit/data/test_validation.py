"""Every validation rule on small hand-built frames: the message names file, column and row, and a refused
import leaves the store byte for byte as it was (see the ``refused`` fixture)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import polars as pl
import pytest

from tests.support.bars import MakeBars, Refused, set_value
from trainfarm.shared.data.readers import read_bars
from trainfarm.shared.data.validation import validate_bars
from trainfarm.shared.errors import DataError


def test_valid_frame_passes(make_bars: MakeBars) -> None:
    validate_bars(make_bars(12), file="ok.parquet", min_rows=12)


@pytest.mark.parametrize("column", ["date", "open", "high", "low", "close", "volume"])
def test_null_in_any_column(make_bars: MakeBars, refused: Refused, column: str) -> None:
    frame = set_value(make_bars(), column, 4, None)
    refused(frame, column=column, row=4, says="missing")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
def test_nan_and_infinity_are_missing_values(make_bars: MakeBars, refused: Refused, value: float) -> None:
    frame = set_value(make_bars(), "close", 6, value)
    error = refused(frame, column="close", row=6, says="missing or non-finite close")
    assert "2024-01-01T00:25:00+00:00" in str(error)


@pytest.mark.parametrize("column", ["open", "high", "low", "close"])
@pytest.mark.parametrize("value", [0.0, -1.0])
def test_prices_must_be_positive(make_bars: MakeBars, refused: Refused, column: str, value: float) -> None:
    # A bad price may break the high/low rules too; positivity is reported first within a row.
    frame = set_value(make_bars(), column, 3, value)
    refused(frame, column=column, row=3, says=f"{column} must be positive, found {value}")


def test_negative_volume(make_bars: MakeBars, refused: Refused) -> None:
    frame = set_value(make_bars(), "volume", 7, -0.5)
    error = refused(frame, column="volume", row=7, says="volume must not be negative, found -0.5")
    assert "2024-01-01T00:30:00+00:00" in str(error)


def test_zero_volume_is_a_quiet_bar(make_bars: MakeBars) -> None:
    validate_bars(set_value(make_bars(), "volume", 3, 0.0), file="f", min_rows=1)


def test_high_below_low(make_bars: MakeBars, refused: Refused) -> None:
    frame = set_value(make_bars(), "high", 5, 50.0)  # low of row 5 is 103.0
    refused(frame, column="high", row=5, says="high 50.0 is below low 103.0")


def test_high_below_open_or_close(make_bars: MakeBars, refused: Refused) -> None:
    frame = set_value(make_bars(), "high", 2, 101.2)  # open 101.0, close 101.5, low 100.0
    refused(frame, column="high", row=2, says="high 101.2 is below max(open 101.0, close 101.5)")


def test_low_above_open_or_close(make_bars: MakeBars, refused: Refused) -> None:
    frame = set_value(make_bars(), "low", 9, 108.2)  # open 108.0, close 108.5, high 109.5
    refused(frame, column="low", row=9, says="low 108.2 is above min(open 108.0, close 108.5)")


def test_duplicate_timestamps_name_both_rows(make_bars: MakeBars, refused: Refused) -> None:
    bars = make_bars(12)
    frame = set_value(bars, "date", 8, bars["date"][6])  # rows 7 and 8 share 00:30
    error = refused(frame, column="date", row=8, says="rows 7 and 8")
    assert "duplicate timestamp 2024-01-01T00:30:00+00:00" in str(error)


def test_duplicate_far_apart_is_found_in_unsorted_files(make_bars: MakeBars, refused: Refused) -> None:
    bars = make_bars(12)
    frame = pl.concat([bars, bars.slice(2, 1)])  # row 13 repeats row 3 and also goes backwards
    refused(frame, column="date", row=13, says="rows 3 and 13")


def test_unsorted_timestamps_name_the_row_going_backwards(make_bars: MakeBars, refused: Refused) -> None:
    bars = make_bars(12)
    frame = pl.concat([bars.head(5), bars.slice(6, 1), bars.slice(5, 1), bars.slice(7, 5)])
    error = refused(frame, column="date", row=7, says="not in ascending order")
    assert "2024-01-01T00:25:00+00:00 comes after 2024-01-01T00:30:00+00:00 (row 6)" in str(error)


def test_timestamps_off_the_5_minute_grid(make_bars: MakeBars, refused: Refused) -> None:
    bars = make_bars(12)
    frame = set_value(bars, "date", 10, bars["date"][9] + timedelta(minutes=2))
    refused(frame, column="date", row=10, says="2024-01-01T00:47:00+00:00 is not on the 5-minute grid")


def test_too_few_rows(make_bars: MakeBars, refused: Refused) -> None:
    error = refused(make_bars(4), column=None, row=None, says="too few rows: 4 bars, at least 5")
    assert error.row is None


def test_default_minimum_is_one_day(make_bars: MakeBars) -> None:
    validate_bars(make_bars(288), file="f", min_rows=288)
    with pytest.raises(DataError, match="too few rows: 287 bars, at least 288"):
        validate_bars(make_bars(287), file="f", min_rows=288)


def test_first_problem_in_file_order_wins(make_bars: MakeBars) -> None:
    frame = set_value(make_bars(), "volume", 9, -1.0)
    frame = set_value(frame, "open", 4, None)
    frame = set_value(frame, "low", 4, 200.0)  # also breaks low <= min(open, close) in row 4
    with pytest.raises(DataError) as caught:
        validate_bars(frame, file="f", min_rows=1)
    # Row 4 comes before row 9; within row 4, the null is reported before the low rule.
    assert (caught.value.row, caught.value.column) == (4, "open")


@pytest.mark.shared_data
def test_all_of_btc_validates_and_a_broken_last_row_is_named(shared_data_dir: Path) -> None:
    """The whole real history passes; one bad bar at its very end is found and named. (How fast: ``python
    -m bench validation``.)"""
    bars = read_bars(shared_data_dir / "BTC_USDT-5m.parquet")
    assert bars.height > 400_000
    validate_bars(bars, file="BTC_USDT-5m.parquet", min_rows=288)
    broken = set_value(bars, "low", bars.height, bars["high"][-1] + 1)  # last row: worst case
    with pytest.raises(DataError, match=f"row {bars.height}:"):
        validate_bars(broken, file="BTC_USDT-5m.parquet", min_rows=288)
