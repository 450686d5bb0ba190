"""Bar intervals the store keeps: 5m, 1h and 1d, and which timeframes each can serve.

A symbol's bars may be stored at any of these intervals (one file per interval). A timeframe is built from
the finest stored interval that divides it: 5m bars serve every timeframe, 1h bars serve 1h, 12h and 24h,
daily bars only 24h. An interval is spelled as exchanges and freqtrade spell it ("5m", "1h", "1d"), which is
not always the spelling of the timeframe of the same length ("24h").
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

from trainfarm.shared.errors import ConfigError
from trainfarm.shared.timeframes import BASE_TIMEFRAME, Timeframe


class BarInterval(StrEnum):
    """The length of one stored bar. Its value names the store's file (``bars-<value>.parquet``)."""

    M5 = "5m"
    H1 = "1h"
    D1 = "1d"

    @property
    def minutes(self) -> int:
        """Length of one bar in minutes."""
        return _MINUTES[self]

    @property
    def duration(self) -> timedelta:
        """Length of one bar."""
        return timedelta(minutes=_MINUTES[self])

    @property
    def base_bars(self) -> int:
        """How many 5-minute slots one bar covers (the unit of the resampled frames' ``bars`` column)."""
        return _MINUTES[self] // BASE_TIMEFRAME.minutes

    @property
    def timeframe(self) -> Timeframe:
        """The timeframe of the same length (1d is the 24h timeframe)."""
        return next(tf for tf in Timeframe if tf.minutes == _MINUTES[self])

    def serves(self, timeframe: Timeframe) -> bool:
        """Whether bars of this interval can be aggregated into bars of ``timeframe`` exactly."""
        return timeframe.minutes % self.minutes == 0


_MINUTES = {BarInterval.M5: 5, BarInterval.H1: 60, BarInterval.D1: 1440}
_ALIASES = {"5min": "5m", "60m": "1h", "24h": "1d", "1440m": "1d", "d": "1d"}

#: Finest first: the order in which a timeframe looks for stored bars.
ALL_INTERVALS: tuple[BarInterval, ...] = (BarInterval.M5, BarInterval.H1, BarInterval.D1)


def parse_interval(text: str) -> BarInterval:
    """The interval for ``text`` ("5m", "1h", "1d", "24h") or :class:`ConfigError` naming the valid ones."""
    key = text.strip().lower()
    key = _ALIASES.get(key, key)
    try:
        return BarInterval(key)
    except ValueError:
        valid = ", ".join(interval.value for interval in BarInterval)
        raise ConfigError(f"unknown bar interval {text!r}; the store keeps {valid} bars") from None


def interval_named(minutes: float) -> BarInterval | None:
    """The store interval ``minutes`` long, or None when the store keeps no such bars."""
    return next((i for i in ALL_INTERVALS if i.minutes == minutes), None)


def _interval_field(value: object) -> object:
    # In a config file: "1h", "60m", "1d"; a ValueError (not ConfigError) so pydantic names the key.
    if isinstance(value, str):
        try:
            return parse_interval(value)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
    return value


#: A config field holding a bar interval, written as its value.
IntervalName = Annotated[BarInterval, BeforeValidator(_interval_field), PlainSerializer(str, return_type=str)]
