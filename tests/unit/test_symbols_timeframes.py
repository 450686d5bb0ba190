"""Canonical symbol ids and timeframe parsing."""

from __future__ import annotations

from datetime import timedelta

import pytest

from trainfarm.shared.errors import ConfigError, SymbolError
from trainfarm.shared.symbols import canonical_symbol, display_symbol
from trainfarm.shared.timeframes import Timeframe, parse_duration, parse_timeframe


@pytest.mark.parametrize(
    "text", ["BTC/USDT", "BTC_USDT", "btc_usdt", "btc-usdt", " BTC/USDT ", "BTC/USDT:USDT"]
)
def test_spellings_map_to_one_id(text: str) -> None:
    assert canonical_symbol(text) == "BTC_USDT"
    assert display_symbol(canonical_symbol(text)) == "BTC/USDT"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "   ",
        "../etc",
        "..",
        "BTC/../../etc",
        "a/b/c",
        "BTC:USDT",
        "BTC USDT",
        "/abs",
        "x\x00y",
        "BTC_",
        "_USDT",
        "BTC//USDT",
        "A" * 21,
    ],
)
def test_unsafe_or_malformed_symbols_are_refused(text: str) -> None:
    with pytest.raises(SymbolError):
        canonical_symbol(text)


def test_single_asset_symbols_are_allowed() -> None:
    assert canonical_symbol("spx500") == "SPX500"


@pytest.mark.parametrize(
    ("text", "tf"),
    [
        ("5m", Timeframe.M5),
        ("1H", Timeframe.H1),
        ("12h", Timeframe.H12),
        ("24h", Timeframe.D1),
        ("1d", Timeframe.D1),
    ],
)
def test_timeframe_spellings(text: str, tf: Timeframe) -> None:
    assert parse_timeframe(text) is tf


def test_timeframe_geometry() -> None:
    assert Timeframe.H12.duration == timedelta(hours=12)
    assert Timeframe.D1.base_bars == 288
    with pytest.raises(ConfigError, match="unknown timeframe '2h'"):
        parse_timeframe("2h")


def test_durations() -> None:
    assert parse_duration("90d") == timedelta(days=90)
    assert parse_duration("2w") == timedelta(days=14)
    for bad in ["", "d", "1.5d", "-1d", "10y", "5ms"]:
        with pytest.raises(ConfigError):
            parse_duration(bad)
