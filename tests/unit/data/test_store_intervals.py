"""The store at 5m, 1h and 1d: detected and named intervals, timeframes built from the finest that divides
them (extended back by a coarser one), intervals that must agree, and syncs that never rewrite history."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from tests.support.bars import START, MakeBars, Snapshot, set_value
from trainfarm.shared.data.intervals import BarInterval
from trainfarm.shared.data.readers import read_bars
from trainfarm.shared.data.resample import resample
from trainfarm.shared.data.store import RECORD_FILE, BarStore
from trainfarm.shared.errors import DataError, DataNotFoundError
from trainfarm.shared.timeframes import Timeframe


def write(frame: pl.DataFrame, path: Path) -> Path:
    frame.write_parquet(path)
    return path


@pytest.fixture
def store(tmp_path: Path) -> BarStore:
    return BarStore(tmp_path / "store", min_rows=288)


@pytest.fixture(scope="module")
def real_5m(sample_dir: Path) -> pl.DataFrame:
    """Sixty days of the bundled real BTC 5m bars (April and May 2023: no gap inside)."""
    bars = read_bars(sample_dir / "BTC_USDT-5m.parquet")
    start = datetime(2023, 4, 1, tzinfo=UTC)
    window = bars.filter((pl.col("date") >= start) & (pl.col("date") < start + timedelta(days=60)))
    assert window.height == 60 * 288
    return window


def same_bars(got: pl.DataFrame, expected: pl.DataFrame) -> bool:
    """Equal bars, but for volumes summed in another order (sums of doubles differ in the last bits)."""
    volume = (got["volume"] - expected["volume"]).abs() <= 1e-9 * expected["volume"].abs()
    return got.drop("volume").equals(expected.drop("volume")) and bool(volume.all())


def hourly(bars: pl.DataFrame) -> pl.DataFrame:
    """Real 1h bars as an exchange publishes them: the 5m bars aggregated (Binance's own 1h bars equal
    these, see ../shared/data/README.md)."""
    return resample(bars, Timeframe.H1).select(bars.columns)


def test_a_1h_file_is_detected_and_serves_1h_12h_and_24h_but_not_5m(
    store: BarStore, real_5m: pl.DataFrame, tmp_path: Path
) -> None:
    report = store.import_file(write(hourly(real_5m), tmp_path / "btc-1h.parquet"), "BTC/USDT")
    assert report.interval is BarInterval.H1 and report.rows_added == 60 * 24
    assert store.intervals("BTC_USDT") == (BarInterval.H1,)
    for tf in (Timeframe.H1, Timeframe.H12, Timeframe.D1):
        assert same_bars(store.load("BTC_USDT", tf), resample(real_5m, tf)), tf
    with pytest.raises(DataNotFoundError, match="BTC_USDT has 1h bars only: 5m bars cannot be built"):
        store.load("BTC_USDT", Timeframe.M5)
    summary = store.summary("BTC_USDT")
    assert (summary.interval, summary.end) == (BarInterval.H1, real_5m["date"][-1] + timedelta(minutes=5))
    assert store.newest_close("BTC_USDT") == summary.end  # read from the record, not the data
    store.check("BTC_USDT")


def test_a_1h_file_imported_as_1d_is_refused_naming_its_interval(
    store: BarStore, real_5m: pl.DataFrame, tmp_path: Path, snapshot: Snapshot
) -> None:
    store.import_file(write(real_5m, tmp_path / "btc-5m.parquet"), "BTC/USDT")
    before = snapshot(store.root)
    path = write(hourly(real_5m), tmp_path / "btc-1h.parquet")
    with pytest.raises(DataError) as caught:
        store.import_file(path, "BTC/USDT", interval=BarInterval.D1)
    assert "file has 1h bars (median spacing 60 min), not 1d bars; import it as 1h bars" in str(caught.value)
    assert snapshot(store.root) == before


def test_a_daily_store_serves_24h_only(store: BarStore, real_5m: pl.DataFrame, tmp_path: Path) -> None:
    daily = resample(real_5m, Timeframe.D1).select(real_5m.columns)
    store.import_file(write(daily, tmp_path / "btc-1d.parquet"), "BTC/USDT", interval=BarInterval.D1)
    assert store.load("BTC_USDT", Timeframe.D1)["bars"].to_list() == [288] * 60
    with pytest.raises(DataNotFoundError, match=r"a 12h bar needs 5m or 1h bars"):
        store.load("BTC_USDT", Timeframe.H12)


def test_1h_history_extends_a_shorter_5m_history_back(
    store: BarStore, real_5m: pl.DataFrame, tmp_path: Path
) -> None:
    recent = real_5m.filter(pl.col("date") >= real_5m["date"][0] + timedelta(days=40, hours=3))
    store.import_file(write(recent, tmp_path / "btc-5m.parquet"), "BTC/USDT")
    store.import_file(write(hourly(real_5m), tmp_path / "btc-1h.parquet"), "BTC/USDT")
    assert store.intervals("BTC_USDT") == (BarInterval.M5, BarInterval.H1)
    # 5m bars serve 5m alone; the 24h bars come from both, with no seam: equal to the 5m history's own.
    assert store.load("BTC_USDT").equals(recent)
    for tf in (Timeframe.H12, Timeframe.D1):
        assert same_bars(store.load("BTC_USDT", tf), resample(real_5m, tf)), tf


def test_a_1h_file_that_disagrees_with_the_5m_bars_is_refused_naming_the_bar(
    store: BarStore, real_5m: pl.DataFrame, tmp_path: Path, snapshot: Snapshot
) -> None:
    store.import_file(write(real_5m, tmp_path / "btc-5m.parquet"), "BTC/USDT")
    before = snapshot(store.root)
    wrong = hourly(real_5m).with_columns(
        high=pl.when(pl.int_range(pl.len()) == 99).then(pl.col("high") * 1.01).otherwise(pl.col("high"))
    )
    with pytest.raises(DataError) as caught:
        store.import_file(write(wrong, tmp_path / "btc-1h.parquet"), "BTC/USDT")
    at = wrong["date"][99].isoformat()
    assert f"at {at}: the 1h bar of BTC_USDT has high" in str(caught.value)
    assert "the 5m and 1h histories disagree there" in str(caught.value)
    assert caught.value.column == "high"
    assert snapshot(store.root) == before


def test_a_1h_bar_closes_before_load_returns_it(
    store: BarStore, real_5m: pl.DataFrame, tmp_path: Path
) -> None:
    """``end`` cuts at bar closes, so a causal cut at 10:30 never sees the 10:00 bar that closes at 11:00."""
    store.import_file(write(hourly(real_5m), tmp_path / "btc-1h.parquet"), "BTC/USDT")
    cut = real_5m["date"][0] + timedelta(days=3, hours=10, minutes=30)
    loaded = store.load("BTC_USDT", Timeframe.H1, end=cut)
    assert loaded["date"][-1] == cut - timedelta(minutes=90)


# -- syncs -----------------------------------------------------------------------------------------------


def test_a_sync_appends_and_keeps_one_record_entry_per_source(store: BarStore, make_bars: MakeBars) -> None:
    bars = make_bars(400)
    first = store.append(
        "BTC/USDT", BarInterval.M5, bars.head(300), origin="ex klines", source="ex", replace=False
    )
    second = store.append(
        "BTC/USDT", BarInterval.M5, bars.slice(290), origin="ex klines", source="ex", replace=False
    )
    assert (first.rows_added, second.rows_added, second.rows_total) == (300, 100, 400)
    record = json.loads((store.root / "BTC_USDT" / RECORD_FILE).read_text())
    sources = record["intervals"]["5m"]["sources"]
    assert [(s["sync"], s["first"], s["last"]) for s in sources] == [
        ("ex", bars["date"][290].isoformat(), bars["date"][-1].isoformat())
    ]
    store.check("BTC/USDT")


def test_a_first_sync_needs_a_day_of_bars_and_a_later_one_a_single_bar(
    store: BarStore, make_bars: MakeBars
) -> None:
    bars = make_bars(300)
    with pytest.raises(DataError, match="too few rows: 287 bars, at least 288"):
        store.append("BTC/USDT", BarInterval.M5, bars.head(287), origin="ex", source="ex", replace=False)
    store.append("BTC/USDT", BarInterval.M5, bars.head(288), origin="ex", source="ex", replace=False)
    report = store.append(
        "BTC/USDT", BarInterval.M5, bars.slice(288, 1), origin="ex", source="ex", replace=False
    )
    assert report.rows_added == 1


def test_a_revised_bar_is_refused_unless_replace_and_then_only_it_changes(
    store: BarStore, make_bars: MakeBars, snapshot: Snapshot
) -> None:
    bars = make_bars(300)
    store.append("BTC/USDT", BarInterval.M5, bars, origin="ex", source="ex", replace=False)
    before = snapshot(store.root)
    revised = set_value(bars.tail(5), "close", 2, bars["close"][-4] + 0.25)
    with pytest.raises(DataError) as caught:
        store.append("BTC/USDT", BarInterval.M5, revised, origin="ex klines", source="ex", replace=False)
    assert (caught.value.file, caught.value.column, caught.value.row) == ("ex klines", "close", 2)
    assert "in the source but" in str(caught.value) and "--replace" in str(caught.value)
    assert snapshot(store.root) == before
    report = store.append("BTC/USDT", BarInterval.M5, revised, origin="ex", source="ex", replace=True)
    assert (report.rows_added, report.rows_revised, report.rows_total) == (0, 1, 300)
    stored = store.load("BTC/USDT")
    assert stored.equals(set_value(bars, "close", 297, bars["close"][-4] + 0.25))
    assert stored["date"][0] == START
