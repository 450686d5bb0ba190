"""Canonical symbol ids and timeframe parsing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import BaseModel, Field, ValidationError

from trainfarm.shared.errors import ConfigError, SymbolError
from trainfarm.shared.symbols import SymbolId, canonical_symbol, display_symbol
from trainfarm.shared.timeframes import (
    Duration,
    DurationOrOff,
    PositiveDuration,
    Timeframe,
    TimeframeName,
    format_duration,
    parse_duration,
    parse_timeframe,
)


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


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("90d", "90d"),
        ("2w", "14d"),
        ("24h", "1d"),
        ("60m", "1h"),
        ("90m", "90m"),
        ("60s", "1m"),
        ("45s", "45s"),
    ],
)
def test_a_duration_is_written_back_in_its_largest_whole_unit(text: str, canonical: str) -> None:
    assert format_duration(parse_duration(text)) == canonical
    assert parse_duration(canonical) == parse_duration(text)


class _Fields(BaseModel):
    symbol: SymbolId = Field(max_length=64)
    timeframe: TimeframeName
    every: Duration = parse_duration("1h")
    window: PositiveDuration = parse_duration("1d")
    meta: DurationOrOff = None


def test_the_annotated_types_hold_canonical_values_and_write_back_text() -> None:
    fields = _Fields.model_validate(
        {"symbol": "btc/usdt", "timeframe": "1d", "every": "2w", "window": "36h", "meta": "off"}
    )
    assert (fields.symbol, fields.timeframe) == ("BTC_USDT", Timeframe.D1)
    assert (fields.every, fields.window, fields.meta) == (timedelta(days=14), timedelta(hours=36), None)
    assert fields.model_dump(mode="json") == {
        "symbol": "BTC_USDT",
        "timeframe": "24h",
        "every": "14d",
        "window": "36h",
        "meta": "off",
    }
    assert _Fields.model_validate(fields.model_dump(mode="json")) == fields
    assert _Fields.model_validate(fields.model_dump()) == fields


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("symbol", "../x", "invalid symbol '../x'"),
        ("symbol", "X" * 100, "at most 64 characters"),  # refused before the symbol is parsed
        ("symbol", 5, "Input should be a valid string"),
        ("timeframe", "2h", "unknown timeframe '2h'"),
        ("timeframe", "1" * 100, "at most 16 characters"),
        ("every", "ninety days", "bad duration 'ninety days'"),
        ("every", 90, "Input should be a valid string"),
        ("window", "0h", "must be longer than zero, got '0h'"),
        ("meta", "sometimes", "bad duration 'sometimes'"),
    ],
)
def test_the_annotated_types_refuse_naming_the_value(field: str, value: object, says: str) -> None:
    raw: dict[str, object] = {"symbol": "BTC_USDT", "timeframe": "1h", field: value}
    with pytest.raises(ValidationError) as err:
        _Fields.model_validate(raw)
    (error,) = err.value.errors()
    assert error["loc"] == (field,) and says in error["msg"]
