"""Timeframes: the bar sizes the farm trains on.

The store always holds 5-minute bars; every other timeframe is resampled from them. A timeframe's value is
the spelling used everywhere outside Python: config keys, CLI options, Redis keys and artifact folders.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer
from pydantic_core import PydanticCustomError

from trainfarm.shared.errors import ConfigError, FarmError


class Timeframe(StrEnum):
    """A bar size. ``Timeframe("1h")`` and :func:`parse_timeframe` accept the canonical spellings."""

    M5 = "5m"
    H1 = "1h"
    H12 = "12h"
    D1 = "24h"

    @property
    def duration(self) -> timedelta:
        """Length of one bar."""
        return timedelta(minutes=_MINUTES[self])

    @property
    def minutes(self) -> int:
        """Length of one bar in minutes."""
        return _MINUTES[self]

    @property
    def base_bars(self) -> int:
        """How many 5-minute base bars make one bar of this timeframe."""
        return _MINUTES[self] // _MINUTES[Timeframe.M5]


_MINUTES = {Timeframe.M5: 5, Timeframe.H1: 60, Timeframe.H12: 720, Timeframe.D1: 1440}

#: Other spellings people type; mapped to the canonical one.
_ALIASES = {"5min": "5m", "60m": "1h", "720m": "12h", "1d": "24h", "1440m": "24h", "d": "24h"}

BASE_TIMEFRAME = Timeframe.M5
ALL_TIMEFRAMES: tuple[Timeframe, ...] = tuple(Timeframe)


def parse_timeframe(text: str) -> Timeframe:
    """Return the timeframe for ``text`` ("1h", "24h", "1d", ...) or raise :class:`ConfigError`."""
    key = text.strip().lower()
    key = _ALIASES.get(key, key)
    try:
        return Timeframe(key)
    except ValueError:
        valid = ", ".join(tf.value for tf in Timeframe)
        raise ConfigError(f"unknown timeframe {text!r}; expected one of {valid}") from None


def timeframe_field(text: str) -> Timeframe:
    """:func:`parse_timeframe` for a pydantic validator: an unknown timeframe is a ``ValueError``, so
    pydantic's message names the key."""
    try:
        return parse_timeframe(text)
    except FarmError as exc:
        raise ValueError(str(exc)) from None


def _timeframe(value: object) -> object:
    if not isinstance(value, str):
        return value  # the enum's own check
    if len(value) > 16:  # pydantic's own words; an unknown timeframe's message would echo all of it
        raise PydanticCustomError(
            "string_too_long", "String should have at most {max_length} characters", {"max_length": 16}
        )
    return timeframe_field(value)


#: A timeframe field: "1h", "1d", "60m", ... validated into the canonical :class:`Timeframe`.
TimeframeName = Annotated[Timeframe, BeforeValidator(_timeframe)]


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as "90d", "12h", "30m", "45s" or "2w" (used by the config file)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    raw = text.strip().lower()
    if len(raw) < 2 or raw[-1] not in units or not raw[:-1].isdigit():
        raise ConfigError(
            f"bad duration {text!r}; write a whole number and a unit s, m, h, d or w (e.g. '90d')"
        )
    return timedelta(seconds=int(raw[:-1]) * units[raw[-1]])


_UNITS = (("d", 86400), ("h", 3600), ("m", 60))


def format_duration(value: timedelta) -> str:
    """The canonical spelling of a duration, read back by :func:`parse_duration`: a whole number of the
    largest of d, h, m that divides it, else seconds ("1d", "6h", "90m", "45s"; weeks are written in days)."""
    seconds = int(value.total_seconds())
    for unit, size in _UNITS:
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _duration(value: object) -> timedelta:
    if isinstance(value, timedelta):  # built in code
        return value
    if not isinstance(value, str):  # what a plain ``str`` field said: a number is not a duration
        raise PydanticCustomError("string_type", "Input should be a valid string")
    try:
        return parse_duration(value)
    except ConfigError as exc:  # as a ValueError, so pydantic's message names the key
        raise ValueError(str(exc)) from None


def _positive_duration(value: object) -> timedelta:
    duration = _duration(value)
    # Zero is as impossible as negative for a window or a cadence: an empty window, a retrain every instant.
    if duration <= timedelta(0):
        shown = value if isinstance(value, str) else format_duration(duration)
        raise ValueError(f"must be longer than zero, got {shown!r}")
    return duration


def _off(value: object) -> timedelta | None:
    return None if value is None or value == "off" else _duration(value)


def _format_off(value: timedelta | None) -> str:
    return "off" if value is None else format_duration(value)


_AS_TEXT = PlainSerializer(format_duration, return_type=str, when_used="json")

#: A config duration: written "90d", "12h", "30m", "45s" or "2w" (:func:`parse_duration`), held as a
#: ``timedelta``, written back (JSON, ``farm config``, the config hash) by :func:`format_duration`.
Duration = Annotated[timedelta, BeforeValidator(_duration), _AS_TEXT]
#: A :data:`Duration` that must be longer than zero.
PositiveDuration = Annotated[timedelta, BeforeValidator(_positive_duration), _AS_TEXT]
#: A :data:`Duration` or "off" (held as None).
DurationOrOff = Annotated[
    timedelta | None,
    BeforeValidator(_off),
    PlainSerializer(_format_off, return_type=str, when_used="json"),
]
