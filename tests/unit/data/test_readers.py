"""Reading bar files: formats, column names, time zones, epochs, and errors that name file, column, row."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from tests.support.bars import MakeBars
from trainfarm.shared.data.readers import BAR_COLUMNS, read_bars
from trainfarm.shared.errors import DataError

HEADER = "date,open,high,low,close,volume\n"
ROW = "{t},100.0,101.5,99.0,100.5,10.0\n"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
T1 = datetime(2024, 1, 1, 0, 5, tzinfo=UTC)


def write_csv(path: Path, *stamps: str, header: str = HEADER) -> Path:
    path.write_text(header + "".join(ROW.format(t=t) for t in stamps))
    return path


def assert_canonical(frame: pl.DataFrame) -> None:
    assert frame.columns == list(BAR_COLUMNS)
    assert frame.schema["date"] == pl.Datetime("ms", "UTC")
    assert all(frame.schema[c] == pl.Float64 for c in BAR_COLUMNS[1:])


def raises(path: Path, **kwargs: bool) -> DataError:
    with pytest.raises(DataError) as caught:
        read_bars(path, **kwargs)
    assert caught.value.file == str(path)
    assert str(caught.value).startswith(str(path))
    return caught.value


# -- CSV time zones ------------------------------------------------------------------------------------


def test_csv_with_offsets_is_converted_to_utc(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "b.csv", "2024-01-01T02:00:00+02:00", "2024-01-01 02:05:00+0200")
    frame = read_bars(path)
    assert_canonical(frame)
    assert frame["date"].to_list() == [T0, T1]
    assert frame.row(0)[1:] == (100.0, 101.5, 99.0, 100.5, 10.0)


def test_csv_z_utc_and_zero_offset_are_one_zone(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "b.csv", "2024-01-01T00:00:00Z", "2024-01-01 00:05:00.000+00:00")
    assert read_bars(path)["date"].to_list() == [T0, T1]


def test_csv_naive_strings_are_refused_naming_column_and_first_row(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "b.csv", "2024-01-01 00:00:00", "2024-01-01 00:05:00", header=HEADER.title())
    error = raises(path)
    assert (error.column, error.row) == ("Date", 1)
    assert "timestamps have no time zone" in str(error)


def test_csv_naive_strings_with_assume_utc(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "b.csv", "2024-01-01 00:00:00", "2024-01-01T00:05")
    assert read_bars(path, assume_utc=True)["date"].to_list() == [T0, T1]


@pytest.mark.parametrize("assume_utc", [False, True])
def test_csv_mixing_naive_and_aware_is_refused(tmp_path: Path, assume_utc: bool) -> None:
    path = write_csv(
        tmp_path / "b.csv", "2024-01-01T00:00:00+00:00", "2024-01-01T00:05:00+00:00", "2024-01-01 00:10:00"
    )
    error = raises(path, assume_utc=assume_utc)
    assert (error.column, error.row) == ("date", 3)
    assert "mixed time zones" in str(error)


def test_csv_mixing_offsets_is_refused(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "b.csv", "2024-01-01T00:00:00+00:00", "2024-01-01T02:05:00+02:00")
    error = raises(path)
    assert (error.column, error.row) == ("date", 2)
    assert "mixed time zones" in str(error)
    assert "+00:00" in str(error) and "+02:00" in str(error)


def test_csv_unreadable_timestamp_names_row(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "b.csv", "2024-01-01T00:00:00Z", "2024-02-30T00:05:00Z")
    error = raises(path)
    assert (error.column, error.row) == ("date", 2)
    assert "unreadable timestamp '2024-02-30T00:05:00Z'" in str(error)


# -- epochs --------------------------------------------------------------------------------------------


def test_csv_epoch_milliseconds(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "b.csv", "1704067200000", "1704067500000", header=HEADER.replace("date", "open_time")
    )
    assert read_bars(path)["date"].to_list() == [T0, T1]


def test_csv_epoch_seconds(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "b.csv", "1704067200", "1704067500", header=HEADER.replace("date", "timestamp")
    )
    assert read_bars(path)["date"].to_list() == [T0, T1]


def test_epoch_units_must_not_mix(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "b.csv", "1704067200", "1704067500000")
    error = raises(path)
    assert (error.column, error.row) == ("date", 2)
    assert "mixed epoch units" in str(error)


def test_parquet_integer_epochs(tmp_path: Path) -> None:
    path = tmp_path / "b.parquet"
    pl.DataFrame(
        {
            "time": [1704067200000, 1704067500000],
            "open": [1, 2],
            "high": [2, 3],
            "low": [1, 1],
            "close": [2, 2],
            "volume": [0, 5],
        }
    ).write_parquet(path)
    frame = read_bars(path)
    assert_canonical(frame)
    assert frame["date"].to_list() == [T0, T1]
    assert frame["volume"].to_list() == [0.0, 5.0]


# -- column names and order ----------------------------------------------------------------------------


@pytest.mark.parametrize("time_name", ["date", "Date", "TIMESTAMP", "time", "datetime", "Open_Time"])
def test_column_names_are_case_insensitive(tmp_path: Path, time_name: str) -> None:
    header = f"Volume,{time_name},CLOSE,Low,High,open,extra\n"
    path = tmp_path / "b.csv"
    path.write_text(header + "10,2024-01-01T00:00:00Z,100.5,99,101.5,100,x\n")
    frame = read_bars(path)
    assert_canonical(frame)
    assert frame.row(0) == (T0, 100.0, 101.5, 99.0, 100.5, 10.0)


def test_missing_columns_are_named_with_the_columns_found(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text("date,open,close\n2024-01-01T00:00:00Z,1,2\n")
    error = raises(path)
    assert "missing column(s) high, low, volume" in str(error)
    assert "found columns: 'date', 'open', 'close'" in str(error)


def test_missing_time_column_lists_accepted_names(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text("when,open,high,low,close,volume\n2024-01-01T00:00:00Z,1,2,1,1,1\n")
    assert "missing column(s) time (date / datetime / timestamp / open_time / time)" in str(raises(path))


def test_non_numeric_price_names_column_and_row(tmp_path: Path) -> None:
    path = tmp_path / "b.csv"
    path.write_text(HEADER + ROW.format(t="2024-01-01T00:00:00Z") + "2024-01-01T00:05:00Z,100,1O1,99,100,1\n")
    error = raises(path)
    assert (error.column, error.row) == ("high", 2)
    assert "not a number: '1O1'" in str(error)


def test_rows_keep_file_order(tmp_path: Path) -> None:
    path = write_csv(tmp_path / "b.csv", "2024-01-01T00:05:00Z", "2024-01-01T00:00:00Z")
    assert read_bars(path)["date"].to_list() == [T1, T0]


def test_csv_gz(tmp_path: Path) -> None:
    plain = write_csv(tmp_path / "b.csv", "2024-01-01T00:00:00Z", "2024-01-01T00:05:00Z")
    packed = tmp_path / "b.csv.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    assert read_bars(packed).equals(read_bars(plain))


# -- Parquet and Arrow ---------------------------------------------------------------------------------


def test_parquet_round_trip(tmp_path: Path, make_bars: MakeBars) -> None:
    bars = make_bars(6)
    for suffix in (".parquet", ".pq"):
        path = tmp_path / f"b{suffix}"
        bars.write_parquet(path)
        assert read_bars(path).equals(bars)


def test_parquet_other_zone_is_converted(tmp_path: Path, make_bars: MakeBars) -> None:
    bars = make_bars(3)
    path = tmp_path / "b.parquet"
    bars.with_columns(pl.col("date").dt.convert_time_zone("Europe/Berlin")).write_parquet(path)
    assert read_bars(path).equals(bars)


def test_parquet_naive_datetimes(tmp_path: Path, make_bars: MakeBars) -> None:
    bars = make_bars(3)
    path = tmp_path / "b.parquet"
    bars.with_columns(pl.col("date").dt.replace_time_zone(None)).write_parquet(path)
    error = raises(path)
    assert (error.column, error.row) == ("date", 1)
    assert "timestamps have no time zone" in str(error)
    assert read_bars(path, assume_utc=True).equals(bars)


def test_arrow_ipc_suffixes(tmp_path: Path, make_bars: MakeBars) -> None:
    bars = make_bars(4)
    for suffix in (".feather", ".arrow", ".ipc"):
        path = tmp_path / f"b{suffix}"
        bars.with_columns(pl.col("date").cast(pl.Datetime("ns", "UTC"))).write_ipc(path, compression="lz4")
        assert read_bars(path).equals(bars)


@pytest.mark.shared_data
def test_freqtrade_feather_slice(shared_data_dir: Path, tmp_path: Path) -> None:
    original = pl.read_ipc(shared_data_dir / "freqtrade-format" / "SUI_USDT-5m.feather")
    assert original.schema["date"] == pl.Datetime("ns", "UTC")  # freqtrade's own dtype
    path = tmp_path / "SUI_USDT-5m.feather"
    original.slice(1000, 500).write_ipc(path)
    frame = read_bars(path)
    assert_canonical(frame)
    assert frame.height == 500
    expected = original.slice(1000, 500).with_columns(pl.col("date").cast(pl.Datetime("ms", "UTC")))
    assert frame.equals(expected)
    assert frame["date"][0] == datetime(2025, 1, 3, 11, 20, tzinfo=UTC)


# -- unreadable files ----------------------------------------------------------------------------------


def test_missing_file(tmp_path: Path) -> None:
    assert "file not found" in str(raises(tmp_path / "nope.parquet"))


def test_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "bars.xlsx"
    path.write_bytes(b"x")
    assert "unknown file type '.xlsx'" in str(raises(path))


@pytest.mark.parametrize("suffix", [".parquet", ".feather", ".csv"])
def test_garbage_or_empty_files(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"bad{suffix}"
    path.write_bytes(b"" if suffix == ".csv" else b"this is not a columnar file")
    assert "cannot read the file" in str(raises(path))
