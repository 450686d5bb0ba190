"""Fresh bars from an exchange's REST API, through ccxt's synchronous client (``pip install
trainfarm[exchange]``).

ccxt is imported here only, when a source is built, so the farm works without the extra. Only spot markets
are loaded (``defaultType`` spot, ``fetchMarkets`` limited to spot): the store's symbols are spot pairs, and
a futures endpoint that is down or geo-blocked must not fail a spot sync. ``api_url`` sends every REST call
to another origin (a proxy or a test exchange) while each endpoint keeps its own path, so a loopback server
that answers ``/api/v3/...`` looks like Binance to ccxt.

The bars come back as the exchange gave them, unsorted and unfiltered by us (the sync validates them and
names the bad row), including the bar that is still forming. ccxt itself sorts each page by open time and
drops rows before ``since``; nothing else is touched, and NaN or infinite values stay as they are.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import polars as pl

from trainfarm.shared.data.intervals import BarInterval
from trainfarm.shared.data.readers import BAR_COLUMNS, BAR_DTYPE, VALUE_COLUMNS
from trainfarm.shared.data.sources import Fetched
from trainfarm.shared.errors import ConfigError, DataError, SourceUnavailableError, SymbolError
from trainfarm.shared.symbols import canonical_symbol, display_symbol

_URL = re.compile(r"\w+://\S+")
_MSG = re.compile(r'"msg"\s*:\s*"([^"]{1,120})')
_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")\]]{1,80}")
_METHODS = {"GET", "POST", "PUT", "DELETE"}


class ExchangeSource:
    """A :class:`~trainfarm.shared.data.sources.BarSource` reading an exchange's klines through ccxt.

    ``retries`` is the number of attempts per request; transient failures (network errors, timeouts, rate
    limits, 5xx) are retried after ``backoff_s``, doubling each time, with ``sleep`` (tests pass a recorder).
    ``page_limit`` bars are asked per request; ``timeout_s`` bounds each request.
    """

    def __init__(
        self,
        exchange: str = "binance",
        *,
        api_url: str | None = None,
        retries: int = 4,
        backoff_s: float = 1.0,
        page_limit: int = 1000,
        timeout_s: float = 10.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if retries < 1 or page_limit < 1 or backoff_s < 0 or timeout_s <= 0:
            raise ConfigError("exchange source: retries and page_limit must be >= 1, timeouts positive")
        try:
            import ccxt
        except ImportError:
            raise ConfigError(
                f"the exchange source {exchange!r} needs ccxt: install trainfarm[exchange]"
            ) from None
        self._ccxt: Any = ccxt
        if exchange not in ccxt.exchanges:
            raise ConfigError(f"ccxt does not know the exchange {exchange!r}")
        self._id = exchange
        self._retries = retries
        self._backoff_s = backoff_s
        self._page_limit = page_limit
        self._sleep = sleep
        client = getattr(ccxt, exchange)(
            {
                "enableRateLimit": True,
                "timeout": int(timeout_s * 1000),
                "options": {
                    "defaultType": "spot",
                    "fetchCurrencies": False,
                    "adjustForTimeDifference": False,
                },
            }
        )
        # Load spot markets only; the option's shape differs between exchanges ({"types": [...]} or [...]).
        markets_option = client.options.get("fetchMarkets")
        if isinstance(markets_option, dict):
            client.options["fetchMarkets"] = {**markets_option, "types": ["spot"]}
        elif isinstance(markets_option, list):
            client.options["fetchMarkets"] = ["spot"]
        if api_url is not None:
            client.urls["api"] = _rebase(client.urls["api"], api_url)
        self._client: Any = client

    @property
    def name(self) -> str:
        """The ccxt exchange id ("binance")."""
        return self._id

    def fetch(self, symbol: str, interval: BarInterval, *, since: datetime | None, now: datetime) -> Fetched:
        """Every bar of ``symbol`` at ``interval`` from ``since`` (None: the exchange's first bar) up to the
        one forming at ``now``, paging forward ``page_limit`` bars at a time (see the class docstring)."""
        market = display_symbol(canonical_symbol(symbol))
        self._call(market, self._client.load_markets)
        listed = self._client.markets.get(market)
        if not listed or not listed.get("spot"):
            raise SymbolError(f"{self._id} lists no spot market {market}")
        if interval.value not in (self._client.timeframes or {}):
            raise ConfigError(f"{self._id} has no {interval.value} klines")
        step = interval.minutes * 60_000
        cursor = 0 if since is None else _ms(since)
        end = _ms(now)
        # One page more than the span needs, plus one for the forming bar: a bound, never an endless loop.
        pages = max(end - cursor, 0) // (step * self._page_limit) + 2
        rows: list[list[Any]] = []
        for _ in range(pages):
            page = self._call(
                market, self._client.fetch_ohlcv, market, interval.value, since=cursor, limit=self._page_limit
            )
            if not page:
                break
            rows.extend(page)
            last = page[-1][0]
            if not isinstance(last, int) or last >= end - step or last + step <= cursor:
                break
            cursor = last + step
        return Fetched(_frame(rows), origin=f"{self._id} {market} {interval.value} klines")

    def _call(self, market: str, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``method(*args, **kwargs)`` with retries on transient ccxt errors; each error as one line."""
        ccxt = self._ccxt
        for attempt in range(1, self._retries + 1):
            try:
                return method(*args, **kwargs)
            except ccxt.BadSymbol as exc:
                raise SymbolError(f"{self._id} does not list {market}: {self._describe(exc)}") from None
            except ccxt.BadResponse as exc:
                raise DataError(
                    f"the answer is not bars ({self._describe(exc)})", file=f"{self._id} {market}"
                ) from None
            except ccxt.BadRequest as exc:
                raise DataError(
                    f"the exchange refused the request ({self._describe(exc)})", file=f"{self._id} {market}"
                ) from None
            except (ccxt.NetworkError, ccxt.OperationFailed) as exc:
                # NetworkError covers timeouts, 429/418 (rate limits), 5xx and refused connections.
                if attempt == self._retries:
                    raise SourceUnavailableError(
                        f"{self._id} did not answer for {market} after {attempt} attempt"
                        f"{'s' if attempt > 1 else ''}: "
                        f"{self._describe(exc)}"
                    ) from None
                self._sleep(self._backoff_s * 2 ** (attempt - 1))
            except ccxt.BaseError as exc:
                # Authentication, permissions, unsupported calls: retrying now cannot help; the next sync may.
                raise SourceUnavailableError(
                    f"{self._id} refused the request for {market}: {self._describe(exc)}"
                ) from None
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _describe(self, exc: BaseException) -> str:
        """One short line for a ccxt error: its class and status, never its URL or an HTML/JSON body."""
        text = _URL.sub("", str(exc))
        message = _MSG.search(text)
        head = re.split(r"[<{\[]", text, maxsplit=1)[0].split()
        words = [w for w in head if w != self._id and w not in _METHODS]
        cause = _ERRNO.search(str(exc.__cause__)) if exc.__cause__ is not None else None
        parts = [" ".join(words), message and message.group(1), cause and cause.group(0)]
        detail = "; ".join(part.strip() for part in parts if part and part.strip())
        line = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
        return " ".join(line.split())[:200]


def _rebase(urls: Any, api_url: str) -> Any:
    """``urls`` (a URL or nested dict of them) with each origin replaced by ``api_url``, paths kept."""
    if isinstance(urls, dict):
        return {key: _rebase(value, api_url) for key, value in urls.items()}
    if not isinstance(urls, str):
        return urls
    base = urlsplit(api_url)
    old = urlsplit(urls)
    path = base.path.rstrip("/") + old.path
    return urlunsplit((base.scheme, base.netloc, path, old.query, old.fragment))


def _ms(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ConfigError(f"exchange source: {moment} has no time zone")
    return int(moment.astimezone(UTC).timestamp() * 1000)


def _frame(rows: list[list[Any]]) -> pl.DataFrame:
    """The canonical columns of ccxt's ``[ms, open, high, low, close, volume]`` rows, in their order."""
    columns: dict[str, pl.Series] = {
        "date": pl.Series("date", [_int(row[0]) for row in rows], dtype=pl.Int64).cast(BAR_DTYPE)
    }
    for index, name in enumerate(VALUE_COLUMNS, start=1):
        columns[name] = pl.Series(name, [_float(row[index]) for row in rows], dtype=pl.Float64)
    return pl.DataFrame(columns).select(BAR_COLUMNS)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _float(value: Any) -> float | None:
    # ccxt parses numbers with float(); a value it could not parse is None (a null the sync refuses).
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
