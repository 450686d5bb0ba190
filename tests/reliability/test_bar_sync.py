"""Bad bars from a source never reach the store: a watched freqtrade folder (real freqtrade feather files
from ../shared/data) whose file is out of order, duplicated, revised, non-finite, from the future, half
written or being written while it is read. Each is refused (or put off to the next sync) with the store
unchanged byte for byte; the next good file syncs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from tests.support.bars import set_value, tree
from tests.support.exchange_server import BinanceServer
from trainfarm.shared.data.intervals import BarInterval
from trainfarm.shared.data.readers import read_bars
from trainfarm.shared.data.sources.folder import FolderSource
from trainfarm.shared.data.store import BarStore
from trainfarm.shared.data.sync import Outcome, SyncReport, sync_symbol

pytestmark = pytest.mark.shared_data

SYMBOL = "SUI_USDT"
ROWS = 3000
NOW = datetime(2026, 3, 1, tzinfo=UTC)  # after every bar of the file


@pytest.fixture(scope="module")
def sui(shared_data_dir: Path) -> pl.DataFrame:
    """The first ROWS bars of a real freqtrade-written file, as read_bars gives them."""
    return read_bars(shared_data_dir / "freqtrade-format" / f"{SYMBOL}-5m.feather").head(ROWS)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "user_data" / "data" / "binance"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def store(tmp_path: Path, folder: Path, sui: pl.DataFrame) -> BarStore:
    """A store that synced the first 2,000 bars from the folder."""
    store = BarStore(tmp_path / "store")
    publish(folder, sui.head(2000))
    assert sync(store, folder).added == 2000
    return store


def publish(folder: Path, bars: pl.DataFrame) -> Path:
    """Write the pair's file as freqtrade does (an Arrow IPC file, replaced in place)."""
    path = folder / f"{SYMBOL}-5m.feather"
    bars.write_ipc(path)
    return path


def sync(store: BarStore, folder: Path, now: datetime = NOW) -> SyncReport:
    return sync_symbol(store, SYMBOL, FolderSource(folder), BarInterval.M5, now=now)


def test_new_rows_of_the_watched_file_are_appended(store: BarStore, folder: Path, sui: pl.DataFrame) -> None:
    publish(folder, sui.head(2600))
    report = sync(store, folder)
    assert (report.outcome, report.added, report.newest) == (Outcome.SYNCED, 600, sui["date"][2599])
    assert store.load(SYMBOL).equals(sui.head(2600))
    assert sync(store, folder).outcome is Outcome.CURRENT


def _swap(bars: pl.DataFrame, row: int) -> pl.DataFrame:
    order = list(range(bars.height))
    order[row - 1], order[row] = order[row], order[row - 1]
    return bars[order]


BAD: dict[str, tuple[Callable[[pl.DataFrame], pl.DataFrame], str]] = {
    "out-of-order": (lambda b: _swap(b, 2400), "row 2401: timestamps are not in ascending order"),
    "duplicated": (
        lambda b: pl.concat([b.head(2300), b.slice(2299, 1), b.slice(2300)]),
        "row 2301: duplicate timestamp",
    ),
    "overlapping-but-different": (
        lambda b: set_value(b, "volume", 1500, b["volume"][1499] * 2),
        "row 1500: at 2025-01-05T04:55:00+00:00: volume is",
    ),
    "non-finite": (lambda b: set_value(b, "close", 2200, float("inf")), "row 2200: at"),
    "from-the-future": (lambda b: b, "opens after now"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_rows_are_refused_naming_the_file_and_row_and_the_store_is_unchanged(
    store: BarStore, folder: Path, sui: pl.DataFrame, case: str
) -> None:
    make, says = BAD[case]
    path = publish(folder, make(sui.head(2600)))
    now = sui["date"][2400] if case == "from-the-future" else NOW
    before = tree(store.root)
    report = sync(store, folder, now)
    assert report.outcome is Outcome.REFUSED, report
    assert report.message.startswith(str(path)) and says in report.message, report.message
    assert tree(store.root) == before
    publish(folder, sui.head(2600))  # the file fixed: the next sync takes it
    assert sync(store, folder).added == 600


def test_a_half_written_file_is_put_off_to_the_next_sync(
    store: BarStore, folder: Path, sui: pl.DataFrame
) -> None:
    path = publish(folder, sui.head(2600))
    whole = path.read_bytes()
    path.write_bytes(whole[: len(whole) // 2])
    before = tree(store.root)
    report = sync(store, folder)
    assert report.outcome is Outcome.UNAVAILABLE and "read again at the next sync" in report.message
    assert tree(store.root) == before
    path.write_bytes(whole)
    assert sync(store, folder).added == 600


def test_a_file_rewritten_while_syncs_read_it_never_leaves_a_partial_store(
    store: BarStore, folder: Path, sui: pl.DataFrame
) -> None:
    """A writer rewrites the file in place, chunk by chunk (as freqtrade does), while syncs read it: each
    sync stores a whole file's bars or nothing, and the store stays valid throughout."""
    versions = [sui.head(n) for n in (2200, 2400, 2600, 2800, 3000)]
    payloads = []
    for bars in versions:
        publish(folder, bars)
        payloads.append((folder / f"{SYMBOL}-5m.feather").read_bytes())
    path = folder / f"{SYMBOL}-5m.feather"
    stop = threading.Event()

    def writer() -> None:
        for payload in payloads:
            with path.open("wb") as fh:  # in place, not atomic: readers can see any prefix
                for start in range(0, len(payload), 4096):
                    fh.write(payload[start : start + 4096])
                    fh.flush()
                    time.sleep(0.001)
            if stop.wait(0.02):
                return

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    outcomes = []
    deadline = time.monotonic() + 60
    while thread.is_alive() and time.monotonic() < deadline and len(outcomes) < 500:
        outcomes.append(sync(store, folder).outcome)
        stored = store.load(SYMBOL)
        assert stored.equals(sui.head(stored.height)), "the store holds bars no whole file had"
    stop.set()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert set(outcomes) <= {Outcome.SYNCED, Outcome.CURRENT, Outcome.UNAVAILABLE}
    assert sync(store, folder).outcome in (Outcome.SYNCED, Outcome.CURRENT)
    assert store.load(SYMBOL).equals(sui)
    store.check(SYMBOL)


def test_a_missing_pair_file_is_named(store: BarStore, folder: Path) -> None:
    report = sync_symbol(store, "BCH/USDT", FolderSource(folder), BarInterval.M5, now=NOW)
    assert report.outcome is Outcome.REFUSED
    assert "has no BCH_USDT-5m file" in report.message and "freqtrade download-data" in report.message
    assert store.symbols() == [SYMBOL]


def test_every_row_before_the_newest_is_compared_again(
    store: BarStore, folder: Path, sui: pl.DataFrame
) -> None:
    """A folder file is read whole, so a revised old row is caught even when only new rows were expected."""
    publish(folder, set_value(sui.head(2600), "volume", 10, sui["volume"][9] + 0.001))
    report = sync(store, folder)
    assert report.outcome is Outcome.REFUSED and "row 10" in report.message


def test_a_symbol_the_exchange_does_not_list_is_refused_in_one_line_and_nothing_changes(
    farm_home: Path,
    sample_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`farm data sync DOGE/USDT` against an exchange (ccxt, real HTTP, loopback) that lists only BTC/USDT."""
    from trainfarm.cli.app import main

    bars = read_bars(sample_dir / "BTC_USDT-5m.parquet").head(600)
    with BinanceServer({"BTC_USDT": bars}) as server:
        config = tmp_path / "farm.toml"
        config.write_text(
            '[universe]\nsymbols = ["BTC_USDT", "DOGE_USDT"]\n[data]\n'
            f'source = {{ kind = "exchange", api_url = "{server.url}" }}\n'
        )
        monkeypatch.setenv("FARM_CONFIG_FILE", str(config))
        monkeypatch.setattr("sys.argv", ["farm", "data", "sync", "DOGE/USDT"])
        before = tree(farm_home)
        with pytest.raises(SystemExit) as exit_info:
            main()
    assert tree(farm_home) == before  # no store folder, no record: nothing written
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 1 and len(err) == 1, err
    assert err[0] == "error: DOGE_USDT 5m: refused: binance lists no spot market DOGE/USDT"
