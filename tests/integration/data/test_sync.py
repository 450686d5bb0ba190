"""`farm data sync` from an exchange: ccxt's real client over real HTTP against a loopback Binance serving a
week of real BTC 5m bars. Only closed bars are stored, an outage stays a gap, a revised bar is refused (and
taken only with replace), a source that is down or failing is named in one line, never a partial write."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from tests.integration.data.conftest import FIRST
from tests.support.bars import tree
from tests.support.exchange_server import BinanceServer
from trainfarm.shared.config import FarmConfig
from trainfarm.shared.data.intervals import BarInterval
from trainfarm.shared.data.sources.exchange import ExchangeSource
from trainfarm.shared.data.store import BarStore
from trainfarm.shared.data.sync import Outcome, SyncReport, sync_all, sync_symbol

pytestmark = pytest.mark.shared_data

#: The first sync's time: the 12:00 bar of the fourth day is still forming.
NOW = datetime(2024, 3, 4, 12, 2, 30, tzinfo=UTC)
FIVE = timedelta(minutes=5)


@pytest.fixture
def server(btc_week: pl.DataFrame) -> Iterator[BinanceServer]:
    with BinanceServer({"BTC_USDT": btc_week}, now=NOW) as stub:
        yield stub


@pytest.fixture
def store(tmp_path: Path) -> BarStore:
    return BarStore(tmp_path / "store")


@pytest.fixture
def source(server: BinanceServer) -> ExchangeSource:
    return ExchangeSource("binance", api_url=server.url, retries=3, backoff_s=0.0, timeout_s=5.0)


def closed_by(bars: pl.DataFrame, now: datetime) -> pl.DataFrame:
    return bars.filter(pl.col("date") + FIVE <= now)


def sync(store: BarStore, source: ExchangeSource, now: datetime, **options: object) -> SyncReport:
    return sync_symbol(store, "BTC/USDT", source, BarInterval.M5, now=now, **options)  # type: ignore[arg-type]


def test_syncs_append_only_closed_bars_incrementally(
    store: BarStore, source: ExchangeSource, server: BinanceServer, btc_week: pl.DataFrame
) -> None:
    first = sync(store, source, NOW)
    assert (first.outcome, first.added) == (Outcome.SYNCED, 3 * 288 + 144)
    assert store.load("BTC_USDT").equals(closed_by(btc_week, NOW))  # the forming 12:00 bar is not stored
    later = NOW + timedelta(hours=2)
    server.now = later
    requests = len(server.klines_requests())
    second = sync(store, source, later)
    assert (second.outcome, second.added, second.newest) == (
        Outcome.SYNCED,
        24,
        later - timedelta(minutes=7.5),
    )
    # Incremental: one request, from the newest stored bar (fetched again to see a revision of it).
    asked = server.klines_requests()[requests:]
    assert [int(q["startTime"]) for q in asked] == [int((NOW - timedelta(minutes=7.5)).timestamp() * 1000)]
    assert store.load("BTC_USDT").equals(closed_by(btc_week, later))
    again = sync(store, source, later)
    assert (again.outcome, again.added) == (Outcome.CURRENT, 0)
    store.check("BTC_USDT")


def test_an_outage_stays_a_gap(
    store: BarStore, source: ExchangeSource, server: BinanceServer, btc_week: pl.DataFrame
) -> None:
    sync(store, source, NOW)
    outage = (NOW + timedelta(hours=1), NOW + timedelta(hours=3))
    server.drop("BTC_USDT", *outage)
    later = NOW + timedelta(hours=6)
    server.now = later
    report = sync(store, source, later)
    assert report.outcome is Outcome.SYNCED
    gaps = store.summary("BTC_USDT").gaps
    assert [(g.after + FIVE, g.before) for g in gaps][-1] == (
        datetime(2024, 3, 4, 13, 5, tzinfo=UTC),
        datetime(2024, 3, 4, 15, 5, tzinfo=UTC),
    )
    assert gaps[-1].missing == 24


def test_a_revised_bar_is_refused_and_taken_only_with_replace(
    store: BarStore, source: ExchangeSource, server: BinanceServer, btc_week: pl.DataFrame
) -> None:
    sync(store, source, NOW)
    newest = store.summary("BTC_USDT").last
    bar = btc_week.filter(pl.col("date") == newest).row(0, named=True)
    server.revise("BTC_USDT", newest, close=bar["close"] + 1.0, high=max(bar["high"], bar["close"] + 1.0))
    server.now = NOW + timedelta(hours=1)
    before = tree(store.root)
    refused = sync(store, source, server.now)
    assert refused.outcome is Outcome.REFUSED
    assert f"at {newest.isoformat()}: high is" in refused.message and "--replace" in refused.message
    assert "\n" not in refused.message and tree(store.root) == before
    taken = sync(store, source, server.now, replace=True)
    assert (taken.outcome, taken.revised, taken.added) == (Outcome.SYNCED, 1, 12)


@pytest.mark.parametrize("status", [429, 500])
def test_a_failing_source_is_retried_then_named_in_one_line_and_nothing_is_written(
    store: BarStore, source: ExchangeSource, server: BinanceServer, status: int
) -> None:
    sync(store, source, NOW)
    server.now = NOW + timedelta(hours=1)
    before = tree(store.root)
    server.fail_next(status, count=2)  # fewer than the 3 attempts: retried, then served
    assert sync(store, source, server.now).added == 12
    server.now = NOW + timedelta(hours=2)
    before = tree(store.root)
    server.fail_next(status, count=100)
    report = sync(store, source, server.now)
    assert report.outcome is Outcome.UNAVAILABLE
    assert "binance" in report.message and "BTC/USDT" in report.message and "\n" not in report.line()
    assert tree(store.root) == before


def test_a_server_that_is_down_is_unavailable_and_the_next_sync_catches_up(
    store: BarStore, source: ExchangeSource, server: BinanceServer, btc_week: pl.DataFrame
) -> None:
    sync(store, source, NOW)
    before = tree(store.root)
    server.down()
    later = NOW + timedelta(hours=1)
    server.now = later
    report = sync(store, source, later)
    assert report.outcome is Outcome.UNAVAILABLE and tree(store.root) == before
    server.up()
    assert sync(store, source, later).added == 12
    assert store.load("BTC_USDT").equals(closed_by(btc_week, later))


def test_bars_from_the_future_and_non_finite_bars_are_refused(
    store: BarStore, source: ExchangeSource, server: BinanceServer, btc_week: pl.DataFrame
) -> None:
    sync(store, source, NOW)
    before = tree(store.root)
    server.now = NOW + timedelta(hours=1)
    # The farm's clock is behind the exchange's by an hour: the exchange serves bars "from the future".
    ahead = sync(store, source, NOW + timedelta(minutes=10))
    assert ahead.outcome is Outcome.REFUSED and "opens after now" in ahead.message
    server.revise("BTC_USDT", NOW + timedelta(minutes=27.5), high=float("nan"))
    broken = sync(store, source, server.now)
    assert broken.outcome is Outcome.REFUSED and "missing or non-finite high" in broken.message
    assert tree(store.root) == before


def test_a_symbol_the_exchange_does_not_list_is_refused_by_name(
    store: BarStore, source: ExchangeSource, server: BinanceServer
) -> None:
    config = FarmConfig.model_validate(
        {
            "universe": {"symbols": ["BTC_USDT", "DOGE_USDT"]},
            "data": {"source": {"kind": "exchange", "exchange": "binance", "api_url": server.url}},
        }
    )
    reports = sync_all(store, config, now=NOW, open_source=lambda c: source)
    assert [(r.symbol, r.outcome) for r in reports] == [
        ("BTC_USDT", Outcome.SYNCED),
        ("DOGE_USDT", Outcome.REFUSED),
    ]
    assert "DOGE/USDT" in reports[1].message
    assert store.symbols() == ["BTC_USDT"]


def test_farm_data_sync_from_the_configured_exchange(
    farm_home: Path,
    server: BinanceServer,
    btc_week: pl.DataFrame,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The command a person runs: the source from the config file, a JSON report, exit 1 with one line
    naming the bar when the exchange revised one."""
    from trainfarm.cli.app import main
    from trainfarm.shared.data.store import open_store

    config = tmp_path / "farm.toml"
    config.write_text(
        '[universe]\nsymbols = ["BTC_USDT"]\n[data]\n'
        f'source = {{ kind = "exchange", api_url = "{server.url}" }}\n'
    )
    monkeypatch.setenv("FARM_CONFIG_FILE", str(config))
    server.now = FIRST + timedelta(days=7)  # every bar has closed (the real clock is years later)

    def farm(*argv: str) -> tuple[int, str, str]:
        monkeypatch.setattr("sys.argv", ["farm", *argv])
        with pytest.raises(SystemExit) as exit_info:
            main()
        out = capsys.readouterr()
        return int(exit_info.value.code or 0), out.out, out.err

    code, out, err = farm("data", "sync", "--json")
    assert code == 0, err
    assert [(r["symbol"], r["outcome"], r["added"]) for r in json.loads(out)] == [
        ("BTC_USDT", "synced", 2016)
    ]
    assert open_store().load("BTC_USDT").equals(btc_week)
    code, out, _ = farm("data", "sync", "BTC/USDT")
    assert code == 0 and "up to date with binance" in out
    newest = btc_week.row(-1, named=True)
    server.revise("BTC_USDT", newest["date"], volume=newest["volume"] + 1.0)
    code, _, err = farm("data", "sync")
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and "Traceback" not in err
    assert lines[0].startswith("error: BTC_USDT 5m: refused:") and "volume is" in lines[0]


def test_a_source_that_cannot_be_built_is_reported_per_symbol(store: BarStore) -> None:
    """An exchange ccxt does not know is a config mistake: each of its symbols says so, nothing is written."""
    config = FarmConfig.model_validate(
        {"universe": {"symbols": ["BTC_USDT"]}, "data": {"source": {"kind": "exchange", "exchange": "nope"}}}
    )
    [report] = sync_all(store, config, now=NOW)
    assert report.outcome is Outcome.REFUSED and "ccxt does not know the exchange 'nope'" in report.message
    assert store.symbols() == []
