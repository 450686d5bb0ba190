"""A loopback Binance spot REST server: what ccxt's real client talks to in the exchange source's tests.

``BinanceServer({"BTC_USDT": bars_5m})`` serves canonical 5m frames (columns of
:data:`trainfarm.shared.data.readers.BAR_COLUMNS`) on 127.0.0.1 from a daemon thread, in Binance's own
formats: ``/api/v3/exchangeInfo`` (just enough for ccxt's market parser), ``/api/v3/klines`` (5m, and 1h or
1d resampled from the 5m bars per request), ``/api/v3/time`` and ``/api/v3/ping``. Any other path is a 404.

Knobs for tests:

* ``now``: bars opening after it are not served; the bar containing it is served as still forming (a 1h or
  1d bar aggregates only the 5m bars opened by then), as Binance does.
* :meth:`fail_next`: answer the next ``count`` requests with an error status (429 and 418 with Binance's JSON
  error and ``Retry-After``; 5xx with an HTML page, as a load balancer would).
* :meth:`down` / :meth:`up`: stop listening (connections are refused) and listen again on the same port.
* :meth:`revise` changes a served bar, :meth:`drop` removes a range of bars (a planted outage).
* ``requests``: every request's path and query, in order, to assert pagination.

Use it as a context manager (or :meth:`start` / :meth:`stop`); stopping joins the thread with a bound. A
plain helper module (no fixtures, no tests).
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Mapping
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

import polars as pl

__all__ = ["BinanceServer"]

#: Interval spellings Binance accepts here, and their length.
INTERVALS = {"5m": timedelta(minutes=5), "1h": timedelta(hours=1), "1d": timedelta(days=1)}
_DEFAULT_LIMIT, _MAX_LIMIT = 500, 1000
#: Bounds: a request that takes longer is dropped; stop and up give up after this long.
_SOCKET_TIMEOUT_S = 5.0
_JOIN_TIMEOUT_S = 5.0
_REASONS = {418: "I'm a teapot", 429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway"}


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _num(value: float | None) -> str:
    # Binance's fixed 8 decimals; a NaN or infinity (planted by revise) goes out as "nan" / "inf".
    return "nan" if value is None else f"{value:.8f}" if math.isfinite(value) else str(value)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    exchange: BinanceServer


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = _SOCKET_TIMEOUT_S

    def do_GET(self) -> None:
        status, body, headers = self.server.exchange.answer(self.path)
        data = body.encode()
        self.send_response(status, _REASONS.get(status))
        content_type = "text/html" if body.startswith("<") else "application/json;charset=UTF-8"
        for key, value in {"Content-Type": content_type, **headers}.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is BinanceServer.requests


class BinanceServer:
    """Binance's public spot REST API for the symbols of ``bars`` (canonical id -> 5m frame)."""

    def __init__(self, bars: Mapping[str, pl.DataFrame], *, now: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._bars = {symbol: frame.sort("date") for symbol, frame in bars.items()}
        last = max(cast(datetime, frame["date"].max()) for frame in self._bars.values() if frame.height)
        #: Bars opening after this are not served; default: every bar served, the last one closed.
        self.now: datetime = now or last + INTERVALS["5m"]
        self._failures: list[int] = []
        self._log: list[str] = []
        self._port = 0
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def start(self) -> BinanceServer:
        """Listen on 127.0.0.1 (a free port the first time, the same port after :meth:`down`)."""
        deadline = time.monotonic() + _JOIN_TIMEOUT_S
        while True:
            try:
                httpd = _Server(("127.0.0.1", self._port), _Handler)
                break
            except OSError:  # the port is still being released after down()
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        httpd.exchange = self
        self._port = httpd.server_address[1]
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="binance-stub", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and join the thread (bounded); new connections are refused."""
        httpd, thread = self._httpd, self._thread
        self._httpd = self._thread = None
        if httpd is not None:
            httpd.shutdown()
            httpd.server_close()
        if thread is not None:
            thread.join(_JOIN_TIMEOUT_S)

    down = stop

    def up(self) -> None:
        """Listen again on the same port after :meth:`down`."""
        if self._httpd is None:
            self.start()

    def __enter__(self) -> BinanceServer:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: the ``api_url`` to give the exchange source."""
        return f"http://127.0.0.1:{self._port}"

    # --- knobs ------------------------------------------------------------------------------------

    def fail_next(self, status: int, count: int = 1) -> None:
        """Answer the next ``count`` requests (any path) with ``status``."""
        with self._lock:
            self._failures.extend([status] * count)

    def revise(self, symbol: str, at: datetime, **values: float) -> None:
        """Change the 5m bar of ``symbol`` opening at ``at`` (open=, high=, low=, close=, volume=)."""
        with self._lock:
            frame = self._bars[symbol]
            hit = pl.col("date") == at
            if not frame.filter(hit).height:
                raise KeyError(f"{symbol} has no bar at {at}")
            self._bars[symbol] = frame.with_columns(
                pl.when(hit).then(pl.lit(v, dtype=pl.Float64)).otherwise(pl.col(k)).alias(k)
                for k, v in values.items()
            )

    def drop(self, symbol: str, start: datetime, end: datetime) -> None:
        """Remove the 5m bars of ``symbol`` opening in [``start``, ``end``): an outage."""
        with self._lock:
            frame = self._bars[symbol]
            self._bars[symbol] = frame.filter((pl.col("date") < start) | (pl.col("date") >= end))

    @property
    def requests(self) -> list[str]:
        """Every request's path and query so far, in order."""
        with self._lock:
            return list(self._log)

    def klines_requests(self) -> list[dict[str, str]]:
        """The query parameters of each klines request so far."""
        return [
            {key: values[0] for key, values in parse_qs(urlsplit(path).query).items()}
            for path in self.requests
            if urlsplit(path).path == "/api/v3/klines"
        ]

    # --- answers ----------------------------------------------------------------------------------

    def answer(self, target: str) -> tuple[int, str, dict[str, str]]:
        """Status, body and extra headers for a GET of ``target`` (path and query)."""
        with self._lock:
            self._log.append(target)
            status = self._failures.pop(0) if self._failures else None
        if status in (418, 429):
            body = {"code": -1003, "msg": "Too much request weight used; please use WebSocket Streams."}
            return status, json.dumps(body), {"Retry-After": "1"}
        if status is not None:
            reason = _REASONS.get(status, "Error")
            return status, f"<html><body><h1>{status} {reason}</h1><p>cloudfront</p></body></html>", {}
        parts = urlsplit(target)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        path = parts.path
        if path == "/api/v3/ping":
            return 200, "{}", {}
        if path == "/api/v3/time":
            return 200, json.dumps({"serverTime": _ms(self.now)}), {}
        if path == "/api/v3/exchangeInfo":
            return 200, json.dumps(self._exchange_info()), {}
        if path == "/api/v3/klines":
            return self._klines(query)
        return 404, "<html><body><h1>404 Not Found</h1></body></html>", {}

    def _exchange_info(self) -> dict[str, Any]:
        symbols = []
        for symbol in sorted(self._bars):
            base, quote = symbol.split("_")
            symbols.append(
                {
                    "symbol": base + quote,
                    "status": "TRADING",
                    "baseAsset": base,
                    "baseAssetPrecision": 8,
                    "quoteAsset": quote,
                    "quotePrecision": 8,
                    "quoteAssetPrecision": 8,
                    "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET"],
                    "icebergAllowed": True,
                    "ocoAllowed": True,
                    "isSpotTradingAllowed": True,
                    "isMarginTradingAllowed": False,
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": "0.01",
                            "maxPrice": "1000000.00",
                            "tickSize": "0.01",
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": "0.00001",
                            "maxQty": "9000.00",
                            "stepSize": "0.00001",
                        },
                        {
                            "filterType": "NOTIONAL",
                            "minNotional": "5.00",
                            "applyMinToMarket": True,
                            "maxNotional": "9000000.00",
                            "applyMaxToMarket": False,
                            "avgPriceMins": 5,
                        },
                    ],
                    "permissions": [],
                    "permissionSets": [["SPOT"]],
                    "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                    "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": _ms(self.now),
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}
            ],
            "exchangeFilters": [],
            "symbols": symbols,
        }

    def _klines(self, query: dict[str, str]) -> tuple[int, str, dict[str, str]]:
        symbol = next((s for s in self._bars if s.replace("_", "") == query.get("symbol")), None)
        if symbol is None:
            return 400, json.dumps({"code": -1121, "msg": "Invalid symbol."}), {}
        step = INTERVALS.get(query.get("interval", ""))
        if step is None:
            return 400, json.dumps({"code": -1120, "msg": "Invalid interval."}), {}
        try:
            limit = min(int(query.get("limit", _DEFAULT_LIMIT)), _MAX_LIMIT)
            start = int(query["startTime"]) if "startTime" in query else None
            end = int(query["endTime"]) if "endTime" in query else None
        except ValueError:
            return 400, json.dumps({"code": -1100, "msg": "Illegal characters found in a parameter."}), {}
        with self._lock:
            frame, now = self._bars[symbol], self.now
        bars = self._aggregate(frame.filter(pl.col("date") <= now), step)
        stamp = pl.col("date").dt.epoch("ms")
        if start is not None:
            bars = bars.filter(stamp >= start)
        if end is not None:
            bars = bars.filter(stamp <= end)
        # Binance: from startTime forward, else the latest bars up to endTime (or now).
        bars = bars.head(limit) if start is not None else bars.tail(limit)
        step_ms = int(step.total_seconds() * 1000)
        rows = [
            [
                _ms(row["date"]),
                _num(row["open"]),
                _num(row["high"]),
                _num(row["low"]),
                _num(row["close"]),
                _num(row["volume"]),
                _ms(row["date"]) + step_ms - 1,
                _num(row["volume"] * row["close"] if row["volume"] is not None else None),
                100,
                _num(row["volume"] / 2 if row["volume"] is not None else None),
                _num(row["volume"] * row["close"] / 2 if row["volume"] is not None else None),
                "0",
            ]
            for row in bars.iter_rows(named=True)
        ]
        return 200, json.dumps(rows), {}

    @staticmethod
    def _aggregate(frame: pl.DataFrame, step: timedelta) -> pl.DataFrame:
        """Bars of length ``step`` from 5m bars (first open, max high, min low, last close, summed volume)."""
        if step == INTERVALS["5m"]:
            return frame
        return frame.group_by_dynamic("date", every=step, closed="left", label="left").agg(
            pl.col("open").first(),
            pl.col("high").max(),
            pl.col("low").min(),
            pl.col("close").last(),
            pl.col("volume").sum(),
        )
