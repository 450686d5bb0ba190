"""The exchange source: ccxt's real client over real HTTP against a loopback Binance
(tests/support/exchange_server.py) serving a week of real BTC 5m bars from ../shared/data."""

from __future__ import annotations

import socket
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from tests.integration.data.conftest import FIRST
from tests.support.exchange_server import BinanceServer
from trainfarm.shared.data.intervals import BarInterval
from trainfarm.shared.data.readers import BAR_COLUMNS, BAR_DTYPE
from trainfarm.shared.data.sources.exchange import ExchangeSource
from trainfarm.shared.errors import ConfigError, SourceUnavailableError, SymbolError

pytestmark = pytest.mark.shared_data

#: 12:02:30 on the sixth day: the 12:00 bar is still forming.
NOW = datetime(2024, 3, 7, 12, 2, 30, tzinfo=UTC)
PAGE = 500
FIVE = timedelta(minutes=5)

MakeSource = Callable[..., ExchangeSource]


@pytest.fixture
def server(btc_week: pl.DataFrame) -> Iterator[BinanceServer]:
    with BinanceServer({"BTC_USDT": btc_week}, now=NOW) as stub:
        yield stub


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def source(server: BinanceServer, sleeps: list[float]) -> MakeSource:
    """Builds a source aimed at the stub, recording its back-off sleeps instead of sleeping."""

    def make(**kwargs: object) -> ExchangeSource:
        options: dict[str, object] = {
            "api_url": server.url,
            "page_limit": PAGE,
            "backoff_s": 0.5,
            "timeout_s": 5.0,
            "sleep": sleeps.append,
        }
        return ExchangeSource(**{**options, **kwargs})  # type: ignore[arg-type]

    return make


def served(frame: pl.DataFrame, now: datetime = NOW) -> pl.DataFrame:
    return frame.filter(pl.col("date") <= now)


def test_pages_through_every_served_bar_in_the_canonical_columns(
    source: MakeSource, server: BinanceServer, btc_week: pl.DataFrame
) -> None:
    fetched = source().fetch("BTC_USDT", BarInterval.M5, since=None, now=NOW)

    assert fetched.origin == "binance BTC/USDT 5m klines"
    assert fetched.bars.columns == list(BAR_COLUMNS)
    assert fetched.bars.schema["date"] == BAR_DTYPE
    assert all(fetched.bars.schema[col] == pl.Float64 for col in BAR_COLUMNS[1:])
    assert_frame_equal(fetched.bars, served(btc_week))
    klines = server.klines_requests()
    # since=None starts at the exchange's first bar, then each page starts one bar after the last.
    assert [int(k["startTime"]) for k in klines] == [
        0,
        *(int((FIRST + FIVE * PAGE * i).timestamp() * 1000) for i in (1, 2, 3)),
    ]
    assert {(k["symbol"], k["interval"], k["limit"]) for k in klines} == {("BTCUSDT", "5m", str(PAGE))}
    # Only the spot endpoints of the loopback origin: no futures, margin or currency calls.
    assert server.requests[0] == "/api/v3/exchangeInfo"
    assert all(path.startswith("/api/v3/klines?") for path in server.requests[1:])


def test_since_starts_at_that_bar(source: MakeSource, server: BinanceServer, btc_week: pl.DataFrame) -> None:
    since = datetime(2024, 3, 6, 8, 0, tzinfo=UTC)

    bars = source().fetch("BTC_USDT", BarInterval.M5, since=since, now=NOW).bars

    assert_frame_equal(bars, served(btc_week).filter(pl.col("date") >= since))
    assert [int(k["startTime"]) for k in server.klines_requests()] == [int(since.timestamp() * 1000)]


def test_the_forming_bar_is_returned_and_nothing_after_now(
    source: MakeSource, server: BinanceServer, btc_week: pl.DataFrame
) -> None:
    exchange = source()
    since = datetime(2024, 3, 7, 10, 0, tzinfo=UTC)

    bars = exchange.fetch("BTC_USDT", BarInterval.M5, since=since, now=NOW).bars
    assert bars["date"].max() == datetime(2024, 3, 7, 12, 0, tzinfo=UTC)

    hourly = exchange.fetch("BTC_USDT", BarInterval.H1, since=since, now=NOW).bars
    assert hourly["date"].to_list() == [since, since + timedelta(hours=1), since + timedelta(hours=2)]
    forming = btc_week.filter(pl.col("date").is_between(since + timedelta(hours=2), NOW))
    assert hourly.row(-1) == (
        since + timedelta(hours=2),
        forming["open"][0],
        forming["high"].max(),
        forming["low"].min(),
        forming["close"][-1],
        pytest.approx(forming["volume"].sum()),
    )

    later = NOW + timedelta(minutes=30)
    server.now = later
    bars = exchange.fetch("BTC_USDT", BarInterval.M5, since=since, now=later).bars
    assert_frame_equal(bars, served(btc_week, later).filter(pl.col("date") >= since))


def test_nothing_new_is_an_empty_frame_in_the_canonical_columns(source: MakeSource) -> None:
    bars = source().fetch("BTC_USDT", BarInterval.M5, since=NOW + FIVE, now=NOW + FIVE).bars

    assert bars.height == 0
    assert bars.columns == list(BAR_COLUMNS)
    assert bars.dtypes == [BAR_DTYPE, *[pl.Float64] * 5]


def test_an_outage_comes_back_as_missing_bars(
    source: MakeSource, server: BinanceServer, btc_week: pl.DataFrame
) -> None:
    # Across a page boundary: the page after the outage starts at the first bar the exchange has again.
    start, end = FIRST + FIVE * 480, FIRST + FIVE * 560
    server.drop("BTC_USDT", start, end)

    bars = source().fetch("BTC_USDT", BarInterval.M5, since=FIRST, now=NOW).bars

    expected = served(btc_week).filter((pl.col("date") < start) | (pl.col("date") >= end))
    assert_frame_equal(bars, expected)
    assert bars.height == served(btc_week).height - 80


def test_a_revised_bar_comes_back_revised_and_non_finite_values_survive(
    source: MakeSource, server: BinanceServer, btc_week: pl.DataFrame
) -> None:
    revised, broken = FIRST + FIVE * 700, FIRST + FIVE * 701
    server.revise("BTC_USDT", revised, close=70_000.5, volume=1.25)
    server.revise("BTC_USDT", broken, high=float("inf"), close=float("nan"))

    bars = source().fetch("BTC_USDT", BarInterval.M5, since=FIRST, now=NOW).bars

    assert bars.height == served(btc_week).height
    row = bars.filter(pl.col("date") == revised).row(0, named=True)
    assert (row["close"], row["volume"]) == (70_000.5, 1.25)
    row = bars.filter(pl.col("date") == broken).row(0, named=True)
    assert row["high"] == float("inf")
    assert row["close"] != row["close"]  # NaN, for validation to refuse


def test_rate_limits_are_retried_with_growing_backoff(
    source: MakeSource, server: BinanceServer, btc_week: pl.DataFrame, sleeps: list[float]
) -> None:
    exchange = source()
    server.fail_next(429, 2)
    since = datetime(2024, 3, 7, tzinfo=UTC)

    bars = exchange.fetch("BTC_USDT", BarInterval.M5, since=since, now=NOW).bars

    assert sleeps == [0.5, 1.0]
    assert_frame_equal(bars, served(btc_week).filter(pl.col("date") >= since))
    assert server.requests.count("/api/v3/exchangeInfo") == 3  # two refused, the third answered

    server.fail_next(503, 1)
    server.fail_next(418, 1)
    exchange.fetch("BTC_USDT", BarInterval.M5, since=since, now=NOW)
    assert sleeps == [0.5, 1.0, 0.5, 1.0]


def test_repeated_5xx_fails_in_one_line_naming_the_exchange_and_symbol(
    source: MakeSource, server: BinanceServer, sleeps: list[float]
) -> None:
    server.fail_next(500, 10)

    with pytest.raises(SourceUnavailableError) as caught:
        source(retries=3).fetch("BTC_USDT", BarInterval.M5, since=None, now=NOW)

    message = str(caught.value)
    assert "\n" not in message
    assert "binance" in message
    assert "BTC/USDT" in message
    assert "500" in message
    assert "<" not in message
    assert "http" not in message
    assert len(server.requests) == 3
    assert sleeps == [0.5, 1.0]


def test_a_server_that_is_down_is_unavailable_until_it_is_back(
    source: MakeSource, server: BinanceServer, btc_week: pl.DataFrame
) -> None:
    exchange = source(retries=2)
    server.down()

    with pytest.raises(SourceUnavailableError, match=r"binance .*BTC/USDT") as caught:
        exchange.fetch("BTC_USDT", BarInterval.M5, since=None, now=NOW)
    assert "\n" not in str(caught.value)

    server.up()
    bars = exchange.fetch("BTC_USDT", BarInterval.M5, since=None, now=NOW).bars
    assert_frame_equal(bars, served(btc_week))


def test_an_exchange_that_never_answers_times_out(sleeps: list[float]) -> None:
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts connections, never answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        exchange = ExchangeSource(api_url=url, retries=2, timeout_s=0.3, sleep=sleeps.append)

        with pytest.raises(SourceUnavailableError, match=r"^binance .*BTC/USDT.*RequestTimeout"):
            exchange.fetch("BTC_USDT", BarInterval.M5, since=None, now=NOW)
    assert sleeps == [1.0]


def test_an_unlisted_symbol_is_a_symbol_error(source: MakeSource, server: BinanceServer) -> None:
    with pytest.raises(SymbolError, match=r"binance .*ETH/USDT"):
        source().fetch("ETH_USDT", BarInterval.M5, since=None, now=NOW)
    assert server.klines_requests() == []


def test_without_ccxt_the_source_asks_for_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ccxt", None)  # makes `import ccxt` raise ImportError

    with pytest.raises(ConfigError, match=r"trainfarm\[exchange\]"):
        ExchangeSource()
