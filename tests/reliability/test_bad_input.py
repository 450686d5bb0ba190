"""Bad input is refused with an error naming the problem, and the farm is left exactly as it was.

docs/RELIABILITY.md, "Bad input". One farm home for the module: the bundled real BTC/USDT and ETH/USDT 5m bars
imported, two real BTC_USDT 12h runs (8 small base models and the meta stage each) in the SQLite registry, one
version the champion (promoted by hand when the gates reject both, as they do on a year of real bars), the
other a candidate, and the farm's embedded Redis. Each case feeds one bad input through the entry point a
person or a bot uses (the `farm` CLI through ``main()``, ``BarStore.import_file``, the Celery task functions
called directly, the outcome-stream ingestion on the real Redis, ``Predictor.load``) and asserts

(a) the error names the problem (file, column, row, symbol, key, entry id, field), and for the CLI: exit
    status 1 and one line on stderr, no traceback;
(b) nothing changed: the bar store, the registry and the artifact root are compared before and after
    (:mod:`tests.support.state`).

docs/RELIABILITY.md lists every case with the command that runs it.
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import redis

from tests.support.bars import set_value
from tests.support.packs import farm_settings, run_in_process
from tests.support.services import SAMPLE_DIR
from tests.support.state import unchanged
from trainfarm.cli.app import main
from trainfarm.shared.champions.publish import promote_version
from trainfarm.shared.connections import embedded_redis, redis_client
from trainfarm.shared.data.readers import read_bars
from trainfarm.shared.data.resample import resample
from trainfarm.shared.data.store import open_store
from trainfarm.shared.errors import ArtifactError, ConfigError, FarmError, PayloadError
from trainfarm.shared.packs.predictor import Predictor
from trainfarm.shared.registry import Registry, VersionRecord, dispose_engine
from trainfarm.shared.settings import FarmSettings, get_settings
from trainfarm.shared.timeframes import Timeframe
from trainfarm.workers import tasks
from trainfarm.workers.checks.outcome_ingest import CURSOR_KEY, ingest
from trainfarm.workers.payloads import MAX_PAYLOAD_BYTES
from trainfarm_client.contract import OUTCOMES_STREAM

SYMBOL, TF = "BTC_USDT", "12h"
#: Real bars every bad file is cut from: the first 600 of the bundled BTC sample (above the 288 minimum).
BASE_ROWS = 600


@dataclass(frozen=True)
class StockedHome:
    """The module's farm home: its settings, the champion and a candidate version, the real bars stored."""

    settings: FarmSettings
    champion: VersionRecord
    candidate: VersionRecord
    bars: pl.DataFrame  #: BASE_ROWS real 5m bars of BTC_USDT, exactly as stored


def _one_run(reason: str) -> str:
    """A whole retrain of SYMBOL/TF through the workers' stages, in this process; its version id."""
    return run_in_process(SYMBOL, TF, reason)


@pytest.fixture(scope="module")
def stocked(tmp_path_factory: pytest.TempPathFactory, sample_dir: Path) -> Iterator[StockedHome]:
    """Real bars, two real versions (one champion), Redis up; Redis stopped and the engine closed after."""
    root = tmp_path_factory.mktemp("bad-input")
    with farm_settings(root / "home") as settings:
        server = embedded_redis(settings)
        server.ensure_running()
        try:
            store = open_store()
            for symbol in ("BTC_USDT", "ETH_USDT"):
                store.import_file(sample_dir / f"{symbol}-5m.parquet", symbol)
            made = [_one_run("reliability: first"), _one_run("reliability: second")]
            registry = Registry.open()
            champion = registry.champions.get(SYMBOL, TF)
            if champion is None:  # both rejected by the gates (real bars): a person promotes one
                promote_version(made[0])
                champion = registry.champions.get(SYMBOL, TF)
            assert champion is not None
            candidate = registry.versions.get(next(v for v in made if v != champion.version))
            bars = read_bars(sample_dir / "BTC_USDT-5m.parquet").head(BASE_ROWS)
            yield StockedHome(settings, champion, candidate, bars)
        finally:
            server.stop()
            dispose_engine(settings.database)


@pytest.fixture
def work(stocked: StockedHome, tmp_path: Path) -> Path:
    """A scratch folder of this test, outside the farm home."""
    return tmp_path


# --- the CLI as a person runs it ----------------------------------------------------------------------------


def cli_refuses(argv: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> str:
    """Run `farm ARGV` through ``main()``; assert exit 1 and one line on stderr without a traceback."""
    monkeypatch.setattr(sys, "argv", ["farm", *argv])
    with pytest.raises(SystemExit) as exit_info:
        main()
    captured = capsys.readouterr()
    assert exit_info.value.code == 1, captured
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ") and "Traceback" not in captured.err
    return lines[0]


def assert_names(message: str, *parts: str) -> None:
    for part in parts:
        assert part in message, f"{part!r} not in {message!r}"


# --- bar files ----------------------------------------------------------------------------------------------

#: Writes one bad file under the folder given, from the real bars given; returns its path.
Writer = Callable[[Path, pl.DataFrame], Path]


def parquet(name: str, change: Callable[[pl.DataFrame], pl.DataFrame]) -> Writer:
    def write(folder: Path, bars: pl.DataFrame) -> Path:
        path = folder / name
        change(bars).write_parquet(path)
        return path

    return write


def csv_text(name: str, text: Callable[[pl.DataFrame], str]) -> Writer:
    def write(folder: Path, bars: pl.DataFrame) -> Path:
        path = folder / name
        path.write_text(text(bars))
        return path

    return write


def _csv(bars: pl.DataFrame, dates: list[str], *, header: bool = True) -> str:
    """``bars`` as CSV text with the given date strings (one per row)."""
    lines = ["date,open,high,low,close,volume"] if header else []
    for date, row in zip(dates, bars.drop("date").iter_rows(), strict=True):
        lines.append(",".join([date, *(repr(v) for v in row)]))
    return "\n".join(lines) + "\n"


def _iso(bars: pl.DataFrame) -> list[str]:
    return [d.isoformat() for d in bars["date"]]


def _epoch_ms(bars: pl.DataFrame) -> list[str]:
    return [str(v) for v in bars["date"].dt.epoch("ms")]


def _replace(items: list[str], row: int, value: str) -> list[str]:
    """``items`` with the 1-based ``row`` set to ``value``."""
    return [value if i == row - 1 else item for i, item in enumerate(items)]


def _shifted(bars: pl.DataFrame, row: int, by: timedelta) -> pl.DataFrame:
    return set_value(bars, "date", row, bars["date"][row - 1] + by)


def _swap(bars: pl.DataFrame, row: int) -> pl.DataFrame:
    """Rows ``row`` and ``row + 1`` (1-based) exchanged."""
    order = list(range(bars.height))
    order[row - 1], order[row] = order[row], order[row - 1]
    return bars[order]


def _resampled(tf: Timeframe) -> Callable[[Path, pl.DataFrame], Path]:
    def write(folder: Path, bars: pl.DataFrame) -> Path:
        whole = read_bars(SAMPLE_DIR / "BTC_USDT-5m.parquet")
        path = folder / f"BTC_USDT-{tf.value}.parquet"
        resample(whole, tf).select(whole.columns).write_parquet(path)
        return path

    return write


def _bytes(name: str, data: Callable[[Path], bytes]) -> Writer:
    def write(folder: Path, bars: pl.DataFrame) -> Path:
        source = folder / "source.parquet"
        bars.write_parquet(source)
        path = folder / name
        path.write_bytes(data(source))
        source.unlink()
        return path

    return write


@dataclass(frozen=True)
class BadFile:
    """One bad bar file: how to write it, the symbol it is imported as, what the error must say."""

    write: Writer
    says: tuple[str, ...]
    symbol: str = "BTC/USDT"
    options: tuple[str, ...] = ()


#: Every validation rule (shared/data/validation.py) and reader refusal (readers.py), one case each, plus
#: the store's own refusals. ``{file}`` in ``says`` stands for the file's path.
BAD_FILES: dict[str, BadFile] = {
    # validation.py, rule by rule
    "rule-null-timestamp": BadFile(
        parquet("null-date.parquet", lambda b: set_value(b, "date", 10, None)),
        ("{file}, column 'date', row 10: missing timestamp (null)",),
    ),
    "rule-nan-price": BadFile(
        parquet("nan-close.parquet", lambda b: set_value(b, "close", 20, float("nan"))),
        ("{file}, column 'close', row 20:", "missing or non-finite close (nan)"),
    ),
    "rule-infinite-volume": BadFile(
        parquet("inf-volume.parquet", lambda b: set_value(b, "volume", 30, math.inf)),
        ("{file}, column 'volume', row 30:", "missing or non-finite volume (inf)"),
    ),
    "rule-non-positive-price": BadFile(
        parquet("zero-open.parquet", lambda b: set_value(b, "open", 40, 0.0)),
        ("{file}, column 'open', row 40:", "open must be positive, found 0.0"),
    ),
    "rule-negative-volume": BadFile(
        parquet("negative-volume.parquet", lambda b: set_value(b, "volume", 50, -1.0)),
        ("{file}, column 'volume', row 50:", "volume must not be negative, found -1.0"),
    ),
    "rule-high-below-low": BadFile(
        parquet("high-below-low.parquet", lambda b: set_value(b, "high", 60, b["low"][59] - 1.0)),
        ("{file}, column 'high', row 60:", "is below low"),
    ),
    "rule-high-below-body": BadFile(
        parquet("high-below-open.parquet", lambda b: set_value(b, "open", 70, b["high"][69] * 1.01)),
        ("{file}, column 'high', row 70:", "is below max(open"),
    ),
    "rule-low-above-body": BadFile(
        parquet("low-above-close.parquet", lambda b: set_value(b, "close", 80, b["low"][79] * 0.99)),
        ("{file}, column 'low', row 80:", "is above min(open"),
    ),
    "rule-duplicate-timestamp": BadFile(
        parquet("duplicate.parquet", lambda b: set_value(b, "date", 90, b["date"][88])),
        ("{file}, column 'date', row 90:", "rows 89 and 90 have the same time"),
    ),
    "rule-descending-timestamps": BadFile(
        parquet("descending.parquet", lambda b: _swap(b, 100)),
        ("{file}, column 'date', row 101:", "not in ascending order"),
    ),
    "rule-off-grid-timestamp": BadFile(
        parquet("off-grid.parquet", lambda b: _shifted(b, 110, timedelta(minutes=3))),
        ("{file}, column 'date', row 110:", "is not on the 5-minute grid"),
    ),
    "rule-too-few-rows": BadFile(
        parquet("short.parquet", lambda b: b.head(100)),
        ("{file}: too few rows: 100 bars, at least 288",),
    ),
    "rule-1h-bars-as-5m": BadFile(
        _resampled(Timeframe.H1),
        ("{file}, column 'date': file has 1h bars (median spacing 60 min), not 5m bars", "--interval 1h"),
        options=("--interval", "5m"),
    ),
    "rule-1h-bars-as-1d": BadFile(
        _resampled(Timeframe.H1),
        ("{file}, column 'date': file has 1h bars (median spacing 60 min), not 1d bars", "--interval 1h"),
        options=("--interval", "1d"),
    ),
    "rule-12h-bars-are-no-store-interval": BadFile(
        _resampled(Timeframe.H12),
        ("{file}, column 'date': file has 12h bars (median spacing 720 min)", "keeps 5m, 1h or 1d bars"),
    ),
    "rule-unknown-interval-option": BadFile(
        _resampled(Timeframe.H1),
        ("unknown bar interval '4h'; the store keeps 5m, 1h, 1d bars",),
        options=("--interval", "4h"),
    ),
    # empty files
    "empty-file": BadFile(csv_text("empty.csv", lambda b: ""), ("{file}: cannot read the file",)),
    "header-only-csv": BadFile(
        csv_text("header.csv", lambda b: "date,open,high,low,close,volume\n"),
        ("{file}: too few rows: 0 bars",),
    ),
    "empty-parquet": BadFile(
        parquet("empty.parquet", lambda b: b.head(0)), ("{file}: too few rows: 0 bars",)
    ),
    # columns and their types (readers.py)
    "missing-column": BadFile(
        parquet("no-volume.parquet", lambda b: b.drop("volume")), ("{file}: missing column(s) volume",)
    ),
    "no-header-row": BadFile(
        csv_text("no-header.csv", lambda b: _csv(b, _epoch_ms(b), header=False)),
        ("{file}: missing column(s)", "probably has no header row"),
    ),
    "case-colliding-columns": BadFile(
        parquet("two-closes.parquet", lambda b: b.with_columns(pl.col("close").alias("Close"))),
        ("{file}, column 'Close': columns 'close' and 'Close' differ only in case",),
    ),
    "text-in-price-column": BadFile(
        csv_text("text-close.csv", lambda b: _csv(b, _epoch_ms(b)).replace(repr(b["close"][4]), "abc", 1)),
        ("{file}, column 'close', row 5: not a number: 'abc'",),
    ),
    "boolean-volume-column": BadFile(
        parquet("bool-volume.parquet", lambda b: b.with_columns(pl.col("volume") > 10)),
        ("{file}, column 'volume': expected numbers, found the type Boolean",),
    ),
    "boolean-time-column": BadFile(
        parquet("bool-date.parquet", lambda b: b.with_columns((pl.col("volume") > 10).alias("date"))),
        ("{file}, column 'date': cannot read timestamps of type Boolean",),
    ),
    "fractional-epoch": BadFile(
        parquet(
            "fraction.parquet",
            lambda b: b.with_columns(pl.col("date").dt.epoch("ms").cast(pl.Float64)).pipe(
                lambda f: set_value(f, "date", 7, f["date"][6] + 0.5)
            ),
        ),
        ("{file}, column 'date', row 7: epoch timestamp", "is not a whole number"),
    ),
    # time zones and timestamps
    "timestamps-without-zone": BadFile(
        parquet("naive.parquet", lambda b: b.with_columns(pl.col("date").dt.replace_time_zone(None))),
        ("{file}, column 'date', row 1: timestamps have no time zone", "--assume-utc"),
    ),
    "mixed-time-zones": BadFile(
        csv_text(
            "mixed-zones.csv",
            lambda b: _csv(b, _replace(_iso(b), 7, b["date"][6].replace(tzinfo=None).isoformat() + "+02:00")),
        ),
        ("{file}, column 'date', row 7: mixed time zones",),
    ),
    "mixed-epoch-units": BadFile(
        csv_text("mixed-units.csv", lambda b: _csv(b, _replace(_epoch_ms(b), 9, _epoch_ms(b)[8][:-3]))),
        ("{file}, column 'date', row 9: mixed epoch units",),
    ),
    "unreadable-timestamp": BadFile(
        csv_text("yesterday.csv", lambda b: _csv(b, _replace(_iso(b), 11, "yesterday"))),
        ("{file}, column 'date', row 11: unreadable timestamp 'yesterday'",),
    ),
    # the file itself
    "unknown-file-type": BadFile(
        _bytes("bars.xlsx", lambda source: source.read_bytes()), ("{file}: unknown file type '.xlsx'",)
    ),
    "corrupt-parquet": BadFile(
        _bytes("corrupt.parquet", lambda source: b"PAR1" + bytes(range(256)) * 40 + b"PAR1"),
        ("{file}: cannot read the file",),
    ),
    "truncated-parquet": BadFile(
        _bytes("truncated.parquet", lambda source: source.read_bytes()[: source.stat().st_size // 2]),
        ("{file}: cannot read the file",),
    ),
    # the store's own refusals
    "disagrees-with-stored-bars": BadFile(
        parquet("disagrees.parquet", lambda b: set_value(b, "volume", 200, b["volume"][199] + 1.0)),
        ("{file}, column 'volume', row 200:", "in the stored bars of BTC_USDT (1 bar(s) differ)"),
    ),
    "new-symbol-bad-file": BadFile(
        parquet("sol-high-below-low.parquet", lambda b: set_value(b, "high", 3, b["low"][2] - 1.0)),
        ("{file}, column 'high', row 3:",),
        symbol="SOL/USDT",
    ),
    "path-traversal-symbol": BadFile(
        parquet("fine.parquet", lambda b: b), ("invalid symbol '../etc'",), "../etc"
    ),
    "dot-dot-symbol": BadFile(parquet("fine.parquet", lambda b: b), ("invalid symbol '..'",), ".."),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES), ids=lambda c: f"import-{c}")
def test_bad_bar_file_is_refused_by_farm_data_import(
    stocked: StockedHome,
    work: Path,
    case: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bad = BAD_FILES[case]
    path = bad.write(work, stocked.bars)
    with unchanged(stocked.settings):
        line = cli_refuses(
            ["data", "import", str(path), "--symbol", bad.symbol, *bad.options], capsys, monkeypatch
        )
    assert_names(line, *(part.format(file=path) for part in bad.says))
    assert open_store().symbols() == ["BTC_USDT", "ETH_USDT"]


def test_missing_file_and_folder_are_refused(
    stocked: StockedHome, work: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (work / "folder.parquet").mkdir()
    with unchanged(stocked.settings):
        missing = cli_refuses(
            ["data", "import", str(work / "absent.csv"), "--symbol", "BTC"], capsys, monkeypatch
        )
        folder = cli_refuses(
            ["data", "import", str(work / "folder.parquet"), "-s", "BTC"], capsys, monkeypatch
        )
    assert_names(missing, f"{work / 'absent.csv'}: file not found")
    assert_names(folder, f"{work / 'folder.parquet'}: not a file")


def test_bad_bar_file_is_refused_by_the_store_api(stocked: StockedHome, work: Path) -> None:
    """The library entry point (the demo's and scripts') refuses as the CLI does, naming file/column/row."""
    path = BAD_FILES["rule-high-below-low"].write(work, stocked.bars)
    with unchanged(stocked.settings), pytest.raises(FarmError) as caught:
        open_store().import_file(path, "BTC/USDT")
    assert_names(str(caught.value), f"{path}, column 'high', row 60:")


# --- freqtrade's format -------------------------------------------------------------------------------------


@pytest.fixture
def freqtrade_file(shared_data_dir: Path) -> Path:
    """A real freqtrade-written feather file (user_data/data/binance/PAIR-5m.feather)."""
    return shared_data_dir / "freqtrade-format" / "SUI_USDT-5m.feather"


def test_freqtrade_file_with_a_bad_bar_is_refused(
    stocked: StockedHome,
    work: Path,
    freqtrade_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    raw = pl.read_ipc(freqtrade_file.read_bytes()).head(BASE_ROWS)
    broken = set_value(raw, "low", 12, raw["high"][11] * 1.01)  # low above the bar's high and body
    path = work / "SUI_USDT-5m.feather"
    broken.write_ipc(path)
    with unchanged(stocked.settings):
        line = cli_refuses(["data", "import", str(path), "--symbol", "SUI/USDT"], capsys, monkeypatch)
    assert_names(line, f"{path}, column 'high', row 12:", "is below low")


def test_truncated_freqtrade_file_is_refused(
    stocked: StockedHome,
    work: Path,
    freqtrade_file: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    path = work / "SUI_USDT-5m.feather"
    data = freqtrade_file.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with unchanged(stocked.settings):
        line = cli_refuses(["data", "import", str(path), "--symbol", "SUI/USDT"], capsys, monkeypatch)
    assert_names(line, f"{path}: cannot read the file")


# --- unknown symbols and timeframes at the CLI --------------------------------------------------------------

UNKNOWN_NAMES: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "unknown-symbol-data-check": (["data", "check", "DOGE/USDT"], ("no bars stored for DOGE_USDT",)),
    "unknown-symbol-dataset-build": (
        ["dataset", "build", "DOGE/USDT", "--timeframe", "1h"],
        ("no bars stored for DOGE_USDT",),
    ),
    "unknown-timeframe-dataset-build": (
        ["dataset", "build", "BTC/USDT", "--timeframe", "7m"],
        ("unknown timeframe '7m'; expected one of 5m, 1h, 12h, 24h",),
    ),
    "unknown-timeframe-retrain": (
        ["retrain", "BTC/USDT", "--timeframe", "2h", "--force"],
        ("unknown timeframe '2h'",),
    ),
    "unknown-timeframe-rollback": (["rollback", "BTC/USDT", "7m"], ("unknown timeframe '7m'",)),
    "path-traversal-symbol-retrain": (
        ["retrain", "../../etc", "--timeframe", "12h", "--force"],
        ("invalid symbol '../../etc'",),
    ),
    "unknown-version-promote": (["promote", "v-no-such-version"], ("v-no-such-version",)),
}


@pytest.mark.parametrize("case", sorted(UNKNOWN_NAMES), ids=lambda c: f"cli-{c}")
def test_unknown_symbol_timeframe_or_version_is_refused(
    stocked: StockedHome, case: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    argv, says = UNKNOWN_NAMES[case]
    with unchanged(stocked.settings):
        line = cli_refuses(argv, capsys, monkeypatch)
    assert_names(line, *says)


# --- config files -------------------------------------------------------------------------------------------


@contextmanager
def config_file(path: Path) -> Iterator[None]:
    """FARM_CONFIG_FILE points at ``path`` inside the block (the settings re-read on both sides)."""
    try:
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("FARM_CONFIG_FILE", str(path))
            get_settings.cache_clear()
            yield
    finally:
        get_settings.cache_clear()


RETRAIN = ["retrain", "BTC/USDT", "--timeframe", "12h", "--force"]

#: (file text, the command that reads it, what the error must say). ``farm retrain`` for the values that
#: would otherwise claim a run the workers then refuse.
BAD_CONFIGS: dict[str, tuple[str, list[str], tuple[str, ...]]] = {
    "unknown-key": (
        "[training]\nbase_round = 5\n",
        ["config"],
        ("{file}: training.base_round: Extra inputs are not permitted",),
    ),
    "unknown-table": ("[trainng]\nbase_rounds = 5\n", ["config"], ("{file}: trainng: Extra inputs",)),
    "negative-cadence": (
        '[timeframes.1h]\ncadence = "-6h"\n',
        ["config"],
        ("{file}: timeframes.1h.cadence: bad duration '-6h'",),
    ),
    "zero-cadence": (
        '[timeframes.1h]\ncadence = "0h"\n',
        RETRAIN,
        ("{file}: timeframes.1h.cadence: must be longer than zero, got '0h'",),
    ),
    "purge-longer-than-split": (
        '[timeframes.12h]\nlabel_horizon = 500\ntraining_window = "365d"\n',
        RETRAIN,
        ("{file}: timeframes.12h.label_horizon: the purge (500 bars", "not shorter than the smallest split"),
    ),
    "splits-leave-no-training": (
        "[splits]\ncalibration_fraction = 0.5\ntest_fraction = 0.4\n",
        RETRAIN,
        ("{file}: splits:", "must leave at least 20% for training"),
    ),
    "unknown-model-in-model-params": (
        "[training.model_params.lgbm_dart]\nnum_leaves = 3\n",
        RETRAIN,
        ("{file}: training.model_params: unknown models ['lgbm_dart']; valid: lgbm_gbdt",),
    ),
    "wrong-value-type": (
        '[training]\nbase_rounds = "many"\n',
        RETRAIN,
        ("{file}: training.base_rounds: Input should be a valid integer",),
    ),
    "out-of-range-value": (
        "[splits]\noof_folds = 1\n",
        ["config"],
        ("{file}: splits.oof_folds: Input should be greater than or equal to 2",),
    ),
    "path-traversal-universe-symbol": (
        '[universe]\nsymbols = ["BTC_USDT", "../x"]\n',
        ["config"],
        ("{file}: universe.symbols.1: invalid symbol '../x'",),
    ),
    "unknown-timeframe-table": (
        "[timeframes.2h]\nlabel_horizon = 3\n",
        ["config"],
        ("{file}: timeframes: unknown timeframe '2h'",),
    ),
    "invalid-toml": ("[training\nbase_rounds = 5\n", ["config"], ("{file} is not valid TOML",)),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS), ids=lambda c: f"config-{c}")
def test_bad_config_file_is_refused_naming_the_key(
    stocked: StockedHome,
    work: Path,
    case: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    text, argv, says = BAD_CONFIGS[case]
    path = work / "farm.toml"
    path.write_text(text)
    with unchanged(stocked.settings), config_file(path):
        line = cli_refuses(argv, capsys, monkeypatch)
    assert_names(line, *(part.format(file=path) for part in says))


def test_missing_config_file_is_refused(
    stocked: StockedHome, work: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with unchanged(stocked.settings), config_file(work / "absent.toml"):
        line = cli_refuses(RETRAIN, capsys, monkeypatch)
    assert_names(line, f"config file {work / 'absent.toml'} does not exist")


# --- artifact packs -----------------------------------------------------------------------------------------


@contextmanager
def damaged(path: Path, change: Callable[[bytes], bytes]) -> Iterator[None]:
    """``path`` (a file of a registered pack) rewritten by ``change`` inside the block, restored after."""
    original = path.read_bytes()
    path.write_bytes(change(original))
    try:
        yield
    finally:
        path.write_bytes(original)


def _base_model_file(pack: Path) -> Path:
    """The first base model file the pack's manifest lists."""
    manifest: dict[str, Any] = json.loads((pack / "manifest.json").read_text())
    rel = next(str(rel) for rel in manifest["files"] if str(rel).startswith("base/"))
    return pack / rel


def test_promote_refuses_a_manifest_with_a_wrong_hash(
    stocked: StockedHome, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest no longer hashes to what the registry recorded: nothing is promoted or announced."""
    pack = Path(stocked.candidate.path)
    with damaged(pack / "manifest.json", lambda b: b.rstrip() + b" \n"), unchanged(stocked.settings):
        line = cli_refuses(["promote", stocked.candidate.version], capsys, monkeypatch)
    assert_names(line, f"{pack / 'manifest.json'}: sha256", "differs from the registered")
    assert Registry.open().champions.get(SYMBOL, TF) == stocked.champion


def test_promote_refuses_a_truncated_model_file(
    stocked: StockedHome, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pack = Path(stocked.candidate.path)
    model = _base_model_file(pack)
    with damaged(model, lambda b: b[: len(b) // 2]), unchanged(stocked.settings):
        line = cli_refuses(["promote", stocked.candidate.version], capsys, monkeypatch)
    rel = model.relative_to(pack).as_posix()
    assert_names(line, f"{pack}: file {rel} has sha256", "manifest says")
    assert Registry.open().champions.get(SYMBOL, TF) == stocked.champion


@pytest.fixture
def pack_copy(stocked: StockedHome, work: Path) -> Path:
    """A copy of the champion's pack outside the farm, as a bot would have fetched it."""
    target = work / "pack"
    shutil.copytree(stocked.champion.path, target)
    return target


def _manifest_with(pack: Path, **changes: Any) -> None:
    manifest = json.loads((pack / "manifest.json").read_text())
    manifest.update(changes)
    (pack / "manifest.json").write_text(json.dumps(manifest, indent=2))


def test_bot_refuses_a_truncated_model_file(stocked: StockedHome, pack_copy: Path) -> None:
    model = _base_model_file(pack_copy)
    model.write_bytes(model.read_bytes()[:100])
    with unchanged(stocked.settings), pytest.raises(ArtifactError) as caught:
        Predictor.load(pack_copy, expected_manifest_sha256=stocked.champion.manifest_sha256)
    assert_names(str(caught.value), f"file {model.relative_to(pack_copy).as_posix()} has sha256")


def test_bot_refuses_a_manifest_with_a_wrong_hash(stocked: StockedHome, pack_copy: Path) -> None:
    _manifest_with(pack_copy, note="edited after registration")
    with unchanged(stocked.settings), pytest.raises(ArtifactError) as caught:
        Predictor.load(pack_copy, expected_manifest_sha256=stocked.champion.manifest_sha256)
    assert_names(str(caught.value), f"{pack_copy / 'manifest.json'}: sha256", "differs from the registered")


def test_bot_refuses_a_pack_of_a_newer_format(stocked: StockedHome, pack_copy: Path) -> None:
    _manifest_with(pack_copy, format_version=99)
    with unchanged(stocked.settings), pytest.raises(ArtifactError) as caught:
        Predictor.load(pack_copy)
    assert_names(str(caught.value), "pack format 99 is newer than this client reads (up to 2)")


def test_bot_refuses_a_folder_that_is_no_pack(stocked: StockedHome, pack_copy: Path) -> None:
    (pack_copy / "manifest.json").unlink()
    with unchanged(stocked.settings), pytest.raises(ArtifactError) as caught:
        Predictor.load(pack_copy)
    assert_names(str(caught.value), f"{pack_copy}: no manifest.json")


# --- task payloads ------------------------------------------------------------------------------------------


def _stage_payload(stocked: StockedHome) -> dict[str, Any]:
    """A well-formed train_base payload (of a run that does not exist), for the cases to break one field."""
    run = Registry.open().runs.get(stocked.champion.run_id)
    return {
        "run_id": "ab" * 16,
        "symbol": SYMBOL,
        "timeframe": TF,
        "snapshot": {"path": "datasets/x.json", "file_sha256": "0" * 64, "content_hash": run.snapshot_hash},
        "config_hash": "1" * 64,
        "model": "lgbm_gbdt",
    }


RUN_PAYLOAD = {"run_id": "ab" * 16, "symbol": SYMBOL, "timeframe": TF}

#: (task, payload or a function of the farm giving it, what the error must say).
BAD_PAYLOADS: dict[str, tuple[str, Callable[[StockedHome], object], tuple[str, ...]]] = {
    "not-an-object": (
        "prepare_run",
        lambda f: ["ab" * 16, SYMBOL, TF],
        ("farm.prepare_run: payload must be a JSON object, got list",),
    ),
    "missing-fields": (
        "prepare_run",
        lambda f: {"run_id": "ab" * 16},
        ("farm.prepare_run: malformed payload: symbol: Field required; timeframe: Field required",),
    ),
    "unknown-field": (
        "prepare_run",
        lambda f: RUN_PAYLOAD | {"priority": 9},
        ("farm.prepare_run: malformed payload: priority: Extra inputs are not permitted",),
    ),
    "bad-run-id": (
        "prepare_run",
        lambda f: RUN_PAYLOAD | {"run_id": "../../registry"},
        ("farm.prepare_run: malformed payload: run_id:", "(got '../../registry')"),
    ),
    "path-traversal-symbol": (
        "prepare_run",
        lambda f: RUN_PAYLOAD | {"symbol": "../../etc"},
        ("farm.prepare_run: malformed payload: symbol:", "invalid symbol '../../etc'"),
    ),
    "unknown-timeframe": (
        "meta_refit",
        lambda f: RUN_PAYLOAD | {"timeframe": "7m"},
        ("farm.meta_refit: malformed payload: timeframe:", "unknown timeframe '7m'"),
    ),
    "oversized-run": (
        "prepare_run",
        lambda f: RUN_PAYLOAD | {"symbol": "B" * (MAX_PAYLOAD_BYTES + 1)},
        ("farm.prepare_run: payload is", "above the 64 KiB cap", "refused unparsed"),
    ),
    "oversized-stage": (
        "train_base",
        lambda f: _stage_payload(f) | {"padding": ["x" * 1000] * 100},
        ("farm.train_base: payload is", "above the 64 KiB cap"),
    ),
    "snapshot-path-traversal": (
        "train_base",
        lambda f: (
            _stage_payload(f) | {"snapshot": _stage_payload(f)["snapshot"] | {"path": "../../etc/passwd"}}
        ),
        ("farm.train_base: malformed payload: snapshot.path:", "must be relative to the artifact root"),
    ),
    "bad-config-hash": (
        "train_meta",
        lambda f: _stage_payload(f) | {"config_hash": "not-a-hash"},
        ("farm.train_meta: malformed payload: config_hash:", "(got 'not-a-hash')"),
    ),
}


def _call_task(name: str, payload: object) -> object:
    """Call the task function in this process, as a worker's pool process would (no broker, not eager)."""
    if name == "train_meta":
        return tasks.train_meta([], payload)
    task = getattr(tasks, name)
    return task(payload)


@pytest.mark.parametrize("case", sorted(BAD_PAYLOADS), ids=lambda c: f"payload-{c}")
def test_malformed_or_oversized_payload_is_refused_before_anything_runs(
    stocked: StockedHome, case: str
) -> None:
    name, make, says = BAD_PAYLOADS[case]
    payload = make(stocked)
    with unchanged(stocked.settings), pytest.raises(PayloadError) as caught:
        _call_task(name, payload)
    message = str(caught.value)
    assert_names(message, *says)
    assert len(message) < 1000  # the error names the problem; it never echoes a huge payload


def test_fan_out_of_an_unknown_timeframe_is_refused(stocked: StockedHome) -> None:
    with unchanged(stocked.settings), pytest.raises(ConfigError) as caught:
        tasks.fan_out_retrain({"timeframe": "7m", "reason": "schedule"})
    assert_names(str(caught.value), "unknown timeframe '7m'")


# --- the bots' outcome stream -------------------------------------------------------------------------------

BAR = datetime(2024, 6, 1, 12, tzinfo=UTC)
GOOD_OUTCOME = {
    "bot_id": "bot-1",
    "symbol": SYMBOL,
    "timeframe": TF,
    "version": "v1",
    "signal": "up",
    "probability": "0.61",
    "realised_return": "",
    "at": BAR.isoformat(),
}

#: (how the entry differs from a good one, the field the log line must name).
BAD_OUTCOMES: dict[str, tuple[dict[str, str], str]] = {
    "probability-above-one": ({"probability": "1.7"}, "probability 1.7 is not in [0, 1]"),
    "probability-not-a-number": ({"probability": "high"}, "could not convert string to float: 'high'"),
    "unknown-timeframe": ({"timeframe": "7m"}, "unknown timeframe '7m'"),
    "path-traversal-symbol": ({"symbol": "../../etc"}, "invalid symbol '../../etc'"),
    "unknown-signal": ({"signal": "sideways"}, "signal 'sideways' is not one of"),
    "time-without-zone": ({"at": "2024-06-01T12:00:00"}, "has no time zone"),
    "infinite-return": ({"realised_return": "inf"}, "realised_return inf is not a finite number"),
    "features-not-json": ({"features": "[0.1, 0.2,"}, "features is not JSON"),
    "missing-bot-id": ({"bot_id": ""}, "field 'bot_id' is missing"),
}


@pytest.fixture
def stream(stocked: StockedHome) -> Iterator[redis.Redis]:
    """The farm's Redis with an empty outcome stream and no cursor, emptied again afterwards."""
    client = redis_client(stocked.settings)
    client.delete(OUTCOMES_STREAM, CURSOR_KEY)
    try:
        yield client
    finally:
        client.delete(OUTCOMES_STREAM, CURSOR_KEY)
        client.close()


@pytest.mark.parametrize("case", sorted(BAD_OUTCOMES), ids=lambda c: f"outcome-{c}")
def test_malformed_outcome_is_skipped_named_and_the_cursor_moves_on(
    stocked: StockedHome, stream: redis.Redis, case: str, caplog: pytest.LogCaptureFixture
) -> None:
    change, says = BAD_OUTCOMES[case]
    entry = stream.xadd(OUTCOMES_STREAM, GOOD_OUTCOME | change)  # type: ignore[arg-type]
    entry_id = entry.decode() if isinstance(entry, bytes) else str(entry)
    with (
        unchanged(stocked.settings),
        caplog.at_level(logging.ERROR, logger="trainfarm.workers.checks.outcome_ingest"),
    ):
        report = ingest(stream, Registry.open())
    assert (report.read, report.malformed, report.inserted, report.updated) == (1, 1, 0, 0)
    assert report.cursor == entry_id
    cursor = stream.get(CURSOR_KEY)
    assert (cursor.decode() if isinstance(cursor, bytes) else cursor) == entry_id
    [record] = [r for r in caplog.records if r.name == "trainfarm.workers.checks.outcome_ingest"]
    assert_names(record.getMessage(), f"outcome {entry_id}:", says, "skipped")
    # The next ingestion starts after it: the bad entry is never read again.
    again = ingest(stream, Registry.open())
    assert (again.read, again.malformed) == (0, 0)
