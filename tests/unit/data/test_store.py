"""The bar store: symbols and folders, merge rules, atomic all-or-nothing imports, load/summary/check, and
every real file in ../shared/data."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import polars as pl
import pytest

from tests.support.bars import START, MakeBars, Snapshot, set_value
from trainfarm.shared.data import store as store_module
from trainfarm.shared.data.gaps import Gap
from trainfarm.shared.data.store import DATA_FILE, LEGACY_RECORD_FILE, RECORD_FILE, BarStore
from trainfarm.shared.errors import DataError, DataNotFoundError, SymbolError
from trainfarm.shared.timeframes import Timeframe

SAMPLE_GAPS = [
    Gap(
        after=datetime(2023, 3, 24, 12, 35, tzinfo=UTC),
        before=datetime(2023, 3, 24, 14, 0, tzinfo=UTC),
        missing=16,
    ),
    Gap(
        after=datetime(2023, 12, 30, 23, 50, tzinfo=UTC),
        before=datetime(2024, 1, 1, 0, 0, tzinfo=UTC),
        missing=289,
    ),
]


def write(frame: pl.DataFrame, path: Path) -> Path:
    frame.write_parquet(path)
    return path


@pytest.fixture
def store(tmp_path: Path) -> BarStore:
    return BarStore(tmp_path / "store", min_rows=5)


# -- symbols and folders -------------------------------------------------------------------------------


def test_symbol_is_canonicalised(store: BarStore, make_bars: MakeBars, tmp_path: Path) -> None:
    report = store.import_file(write(make_bars(12), tmp_path / "b.parquet"), "btc/usdt")
    assert report.symbol == "BTC_USDT"
    folder = store.root / "BTC_USDT"
    assert sorted(p.name for p in folder.iterdir()) == [DATA_FILE, RECORD_FILE]
    meta = json.loads((folder / RECORD_FILE).read_text())
    assert (meta["symbol"], meta["display"]) == ("BTC_USDT", "BTC/USDT")
    assert store.symbols() == ["BTC_USDT"]
    assert store.has("BTC_USDT") and store.has("btc-usdt") and not store.has("ETH/USDT")


def test_symbols_are_sorted_and_ignore_stray_folders(
    store: BarStore, make_bars: MakeBars, tmp_path: Path
) -> None:
    path = write(make_bars(12), tmp_path / "b.parquet")
    for symbol in ("SOL/USDT", "BTC/USDT", "ETH/USDT"):
        store.import_file(path, symbol)
    (store.root / "not a symbol").mkdir()
    (store.root / "XRP_USDT").mkdir()  # no data file
    assert store.symbols() == ["BTC_USDT", "ETH_USDT", "SOL_USDT"]
    assert BarStore(tmp_path / "absent").symbols() == []


@pytest.mark.parametrize("symbol", ["../etc", "a/b/c", "BTC:USDT", "..", "", "BTC/../../x", "/abs"])
def test_escaping_symbols_are_refused(
    store: BarStore, make_bars: MakeBars, tmp_path: Path, snapshot: Snapshot, symbol: str
) -> None:
    path = write(make_bars(12), tmp_path / "b.parquet")
    with pytest.raises(SymbolError):
        store.import_file(path, symbol)
    with pytest.raises(SymbolError):
        store.has(symbol)
    assert snapshot(store.root) == {}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b.parquet"]


def test_symlinked_symbol_folder_outside_root_is_refused(
    store: BarStore, make_bars: MakeBars, tmp_path: Path
) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    store.root.mkdir()
    (store.root / "BTC_USDT").symlink_to(outside, target_is_directory=True)
    with pytest.raises(SymbolError, match="outside the store"):
        store.import_file(write(make_bars(12), tmp_path / "b.parquet"), "BTC/USDT")
    assert list(outside.iterdir()) == []


def _record(store: BarStore) -> dict[str, Any]:
    return cast(dict[str, Any], json.loads((store.root / "BTC_USDT" / RECORD_FILE).read_text()))


# -- merging -------------------------------------------------------------------------------------------


def test_overlapping_import_adds_only_new_bars(store: BarStore, make_bars: MakeBars, tmp_path: Path) -> None:
    bars = make_bars(30)
    first = store.import_file(write(bars.slice(0, 20), tmp_path / "a.parquet"), "BTC/USDT")
    assert (first.rows_in_file, first.rows_added, first.rows_total) == (20, 20, 20)
    second = store.import_file(write(bars.slice(10, 20), tmp_path / "b.parquet"), "BTC/USDT")
    assert (second.rows_in_file, second.rows_added, second.rows_total) == (20, 10, 30)
    assert (second.first, second.last) == (START, START + timedelta(minutes=5 * 29))
    assert second.gaps == []
    assert store.load("BTC/USDT").equals(bars)
    sources = _record(store)["intervals"]["5m"]["sources"]
    assert [(s["file"], s["rows"]) for s in sources] == [("a.parquet", 20), ("b.parquet", 20)]
    assert sources[1]["first"] == "2024-01-01T00:50:00+00:00"
    assert set(sources[0]) == {"file", "sha256", "rows", "first", "last", "imported_at"}


def test_disjoint_import_leaves_a_gap(store: BarStore, make_bars: MakeBars, tmp_path: Path) -> None:
    bars = make_bars(30)
    store.import_file(write(bars.slice(0, 10), tmp_path / "a.parquet"), "BTC/USDT")
    report = store.import_file(write(bars.slice(15, 15), tmp_path / "b.parquet"), "BTC/USDT")
    assert report.gaps == [Gap(after=bars["date"][9], before=bars["date"][15], missing=5)]
    assert store.summary("BTC/USDT").to_json()["gaps"] == 1


def test_same_file_again_changes_nothing(
    store: BarStore, make_bars: MakeBars, tmp_path: Path, snapshot: Snapshot
) -> None:
    path = write(make_bars(12), tmp_path / "a.parquet")
    store.import_file(path, "BTC/USDT")
    before = snapshot(store.root)
    report = store.import_file(path, "BTC/USDT")
    assert (report.rows_added, report.rows_total) == (0, 12)
    assert snapshot(store.root) == before


def test_conflicting_overlap_is_refused_and_store_unchanged(
    store: BarStore, make_bars: MakeBars, tmp_path: Path, snapshot: Snapshot
) -> None:
    bars = make_bars(30)
    store.import_file(write(bars.slice(0, 20), tmp_path / "a.parquet"), "BTC/USDT")
    before = snapshot(store.root)
    changed = set_value(bars.slice(10, 20), "close", 4, 113.25)  # file row 4 = stored bar 14 (01:05)
    path = write(changed, tmp_path / "b.parquet")
    with pytest.raises(DataError) as caught:
        store.import_file(path, "BTC/USDT")
    error = caught.value
    assert (error.file, error.column, error.row) == (str(path), "close", 4)
    assert "2024-01-01T01:05:00+00:00" in str(error)
    assert "113.25 in the file but 113.5" in str(error)
    assert "--replace" in str(error)
    assert snapshot(store.root) == before


def test_replace_replaces_wholesale(store: BarStore, make_bars: MakeBars, tmp_path: Path) -> None:
    store.import_file(write(make_bars(20), tmp_path / "a.parquet"), "BTC/USDT")
    other = set_value(make_bars(8, START + timedelta(hours=5)), "close", 4, 103.25)
    report = store.import_file(write(other, tmp_path / "b.parquet"), "BTC/USDT", replace=True)
    assert (report.rows_added, report.rows_total) == (8, 8)
    assert store.load("BTC/USDT").equals(other)
    sources = _record(store)["intervals"]["5m"]["sources"]
    assert [s["file"] for s in sources] == ["b.parquet"]
    store.check("BTC/USDT")


def test_failed_metadata_write_restores_the_data_file(
    store: BarStore, make_bars: MakeBars, tmp_path: Path, snapshot: Snapshot, monkeypatch: pytest.MonkeyPatch
) -> None:
    bars = make_bars(30)
    store.import_file(write(bars.slice(0, 20), tmp_path / "a.parquet"), "BTC/USDT")
    before = snapshot(store.root)

    def fail(target: Path, text: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(store_module, "atomic_write_text", fail)
    with pytest.raises(OSError, match="disk full"):
        store.import_file(write(bars.slice(10, 20), tmp_path / "b.parquet"), "BTC/USDT")
    with pytest.raises(OSError, match="disk full"):
        store.import_file(write(bars, tmp_path / "c.parquet"), "ETH/USDT")
    assert snapshot(store.root) == before


def test_concurrent_imports_lose_no_bars(store: BarStore, make_bars: MakeBars, tmp_path: Path) -> None:
    bars = make_bars(80)
    paths = [write(bars.slice(i * 10, 10), tmp_path / f"part{i}.parquet") for i in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        reports = list(pool.map(lambda path: store.import_file(path, "BTC/USDT"), paths))
    assert sum(r.rows_added for r in reports) == 80
    assert store.load("BTC/USDT").equals(bars)
    assert store.check("BTC/USDT").sources == 8


# -- reading -------------------------------------------------------------------------------------------


def test_load_filters_and_resamples(store: BarStore, make_bars: MakeBars, tmp_path: Path) -> None:
    bars = make_bars(36)  # 3 hours from 00:00
    store.import_file(write(bars, tmp_path / "a.parquet"), "BTC/USDT")
    assert store.load("BTC/USDT").columns == ["date", "open", "high", "low", "close", "volume"]
    window = store.load("BTC/USDT", start=START + timedelta(minutes=30), end=START + timedelta(hours=1))
    assert window["date"].to_list() == [START + timedelta(minutes=m) for m in range(30, 60, 5)]
    hourly = store.load("BTC/USDT", Timeframe.H1)
    assert hourly.columns == ["date", "open", "high", "low", "close", "volume", "bars"]
    assert hourly["date"].to_list() == [START + timedelta(hours=h) for h in range(3)]
    assert hourly.row(1) == (
        START + timedelta(hours=1),
        112.0,
        124.5,
        111.0,
        123.5,
        sum(range(22, 34)) + 0.0,
        12,
    )
    # A start inside the first hour makes that hour incomplete, so it is dropped.
    late = store.load("BTC/USDT", Timeframe.H1, start=START + timedelta(minutes=5))
    assert late["date"].to_list() == [START + timedelta(hours=1), START + timedelta(hours=2)]
    with pytest.raises(ValueError, match="zone-aware"):
        store.load("BTC/USDT", start=datetime(2024, 1, 1))  # deliberately naive


def test_unknown_symbol_is_not_found_with_a_hint(store: BarStore) -> None:
    for call in (store.load, store.summary, store.check):
        with pytest.raises(DataNotFoundError, match="farm data import"):
            call("DOGE/USDT")


def test_summary_json(store: BarStore, make_bars: MakeBars, tmp_path: Path) -> None:
    bars = make_bars(20)
    store.import_file(write(pl.concat([bars.head(8), bars.tail(9)]), tmp_path / "a.parquet"), "BTC/USDT")
    summary = store.summary("BTC/USDT")
    assert summary.to_json() == {
        "symbol": "BTC_USDT",
        "interval": "5m",
        "first": "2024-01-01T00:00:00+00:00",
        "last": "2024-01-01T01:35:00+00:00",
        "rows": 17,
        "gaps": 1,
    }
    assert summary.gap_list() == [
        {"after": "2024-01-01T00:35:00+00:00", "before": "2024-01-01T00:55:00+00:00", "missing": 3}
    ]
    assert summary.missing_bars == 3
    json.dumps(summary.to_json())


# -- check ---------------------------------------------------------------------------------------------


def test_check_passes_on_a_healthy_store(store: BarStore, make_bars: MakeBars, tmp_path: Path) -> None:
    store.import_file(write(make_bars(12), tmp_path / "a.parquet"), "BTC/USDT")
    report = store.check("BTC/USDT")
    assert (report.summary.rows, report.missing_bars, report.gaps, report.sources) == (12, 0, [], 1)
    assert report.to_json()["gap_list"] == []


def test_check_finds_a_truncated_data_file(store: BarStore, make_bars: MakeBars, tmp_path: Path) -> None:
    store.import_file(write(make_bars(12), tmp_path / "a.parquet"), "BTC/USDT")
    data = store.root / "BTC_USDT" / DATA_FILE
    data.write_bytes(data.read_bytes()[:200])
    for call in (store.check, store.summary, store.load):
        with pytest.raises(DataError) as caught:
            call("BTC/USDT")
        assert caught.value.file == str(data.resolve())


def test_check_revalidates_the_data(store: BarStore, make_bars: MakeBars, tmp_path: Path) -> None:
    store.import_file(write(make_bars(12), tmp_path / "a.parquet"), "BTC/USDT")
    data = store.root / "BTC_USDT" / DATA_FILE
    set_value(make_bars(12), "low", 3, 102.2).write_parquet(data)  # above open 102.0
    with pytest.raises(DataError) as caught:
        store.check("BTC/USDT")
    assert (caught.value.column, caught.value.row) == ("low", 3)


def test_check_compares_the_record_with_the_data(
    store: BarStore, make_bars: MakeBars, tmp_path: Path
) -> None:
    store.import_file(write(make_bars(12), tmp_path / "a.parquet"), "BTC/USDT")
    record_path = store.root / "BTC_USDT" / RECORD_FILE
    record = json.loads(record_path.read_text())
    record["intervals"]["5m"]["rows"] = 13
    record_path.write_text(json.dumps(record))
    with pytest.raises(DataError, match=r"bars\.json does not match"):
        store.check("BTC/USDT")
    record_path.write_text("{not json")
    with pytest.raises(DataError, match="cannot read the store's record of its bars"):
        store.check("BTC/USDT")


def test_a_store_written_with_the_legacy_record_name_is_read_then_moved(
    store: BarStore, make_bars: MakeBars, tmp_path: Path
) -> None:
    # Stores written before the record was named bars.json kept it as meta.json.
    store.import_file(write(make_bars(12), tmp_path / "a.parquet"), "BTC/USDT")
    folder = store.root / "BTC_USDT"
    (folder / RECORD_FILE).rename(folder / LEGACY_RECORD_FILE)
    assert store.check("BTC/USDT").sources == 1
    store.import_file(write(make_bars(14), tmp_path / "b.parquet"), "BTC/USDT")
    assert sorted(p.name for p in folder.iterdir()) == [DATA_FILE, RECORD_FILE]
    assert len(_record(store)["intervals"]["5m"]["sources"]) == 2
    assert store.check("BTC/USDT").summary.rows == 14


def test_a_format_1_record_is_read_as_5m_bars_and_rewritten_as_format_2(
    store: BarStore, make_bars: MakeBars, tmp_path: Path
) -> None:
    # Before stores kept 1h and 1d bars, bars.json described the one 5m data file at its top level.
    store.import_file(write(make_bars(12), tmp_path / "a.parquet"), "BTC/USDT")
    path = store.root / "BTC_USDT" / RECORD_FILE
    entry = _record(store)["intervals"]["5m"]
    sources = entry.pop("sources")
    path.write_text(json.dumps({"format": 1, "symbol": "BTC_USDT", "data": entry, "sources": sources}))
    assert store.check("BTC/USDT").sources == 1
    store.import_file(write(make_bars(14), tmp_path / "b.parquet"), "BTC/USDT")
    record = _record(store)
    assert record["format"] == 2
    assert [s["file"] for s in record["intervals"]["5m"]["sources"]] == ["a.parquet", "b.parquet"]


# -- real data -----------------------------------------------------------------------------------------


def test_bundled_sample_imports_with_its_two_known_gaps(sample_dir: Path, tmp_path: Path) -> None:
    store = BarStore(tmp_path / "store")
    report = store.import_file(sample_dir / "BTC_USDT-5m.parquet", "BTC/USDT")
    assert (report.rows_in_file, report.rows_total) == (105_103, 105_103)
    assert (report.first, report.last) == (
        datetime(2023, 3, 1, tzinfo=UTC),
        datetime(2024, 2, 29, 23, 55, tzinfo=UTC),
    )
    assert report.gaps == SAMPLE_GAPS
    # 366 days of 5m bars, less the missing ones.
    assert report.rows_total + sum(g.missing for g in report.gaps) == 366 * 288
    check = store.check("BTC/USDT")
    assert (check.missing_bars, check.summary.rows) == (305, 105_103)


@pytest.mark.slow  # imports every real file whole
@pytest.mark.shared_data
@pytest.mark.parametrize(
    "name",
    [
        "BTC_USDT-5m.parquet",
        "ETH_USDT-5m.parquet",
        "SOL_USDT-5m.parquet",
        "freqtrade-format/SUI_USDT-5m.feather",
        "freqtrade-format/BCH_USDT-5m.feather",
    ],
)
def test_every_shared_file_imports(shared_data_dir: Path, tmp_path: Path, name: str) -> None:
    path = shared_data_dir / name
    store = BarStore(tmp_path / "store")
    symbol = path.name.split("-")[0]
    report = store.import_file(path, symbol)
    scan = pl.scan_ipc if path.suffix == ".feather" else pl.scan_parquet
    assert report.rows_in_file == report.rows_total == scan(path).select(pl.len()).collect().item()
    if path.suffix == ".parquet":  # the three parquet files come with their list of known gaps
        gaps_csv = path.with_name(path.name.replace(".parquet", ".gaps.csv"))
        expected = pl.read_csv(gaps_csv, infer_schema=False)
        assert [str(g.missing) for g in report.gaps] == expected["missing"].to_list()
        assert [g.before.strftime("%Y-%m-%dT%H:%M:%S.000+0000") for g in report.gaps] == expected[
            "date"
        ].to_list()
    assert store.check(symbol).summary.rows == report.rows_total


@pytest.mark.slow  # rewrites and imports damaged copies of a whole real file
@pytest.mark.shared_data
@pytest.mark.parametrize("damage", ["high below low", "truncated", "renamed column"])
def test_broken_copies_of_real_files_are_refused(
    shared_data_dir: Path, tmp_path: Path, snapshot: Snapshot, damage: str
) -> None:
    original = shared_data_dir / "BTC_USDT-5m.parquet"
    copy = tmp_path / "BTC_USDT-5m.parquet"
    if damage == "high below low":
        bars = pl.read_parquet(original)
        set_value(bars, "high", 200_001, bars["low"][200_000] - 1).write_parquet(copy)
        says = "high 37641.0 is below low 37642.0"
    elif damage == "truncated":
        data = original.read_bytes()
        copy.write_bytes(data[: len(data) // 2])
        says = "cannot read the file"
    else:
        pl.read_parquet(original).rename({"volume": "vol"}).write_parquet(copy)
        says = "missing column(s) volume; found columns: 'date', 'open', 'high', 'low', 'close', 'vol'"
    store = BarStore(tmp_path / "store")
    store.import_file(shared_data_dir / "freqtrade-format" / "SUI_USDT-5m.feather", "SUI/USDT")
    before = snapshot(store.root)
    with pytest.raises(DataError) as caught:
        store.import_file(copy, "BTC/USDT")
    assert str(caught.value).startswith(str(copy))
    assert says in str(caught.value)
    if damage == "high below low":
        assert (caught.value.column, caught.value.row) == ("high", 200_001)
        assert "2023-11-26T12:00:00+00:00" in str(caught.value)
    assert snapshot(store.root) == before
