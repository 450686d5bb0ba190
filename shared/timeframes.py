"""Timeframes: the bar sizes the farm trains on.

The store always holds 5-minute bars; every other timeframe is resampled from them. A timeframe's value is
the spelling used everywhere outside Python: config keys, CLI options, Redis keys and artifact folders.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum

from trainfarm.shared.errors import ConfigError


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


def parse_duration(text: str) -> timedelta:
    """Parse a duration such as "90d", "12h", "30m", "45s" or "2w" (used by the config file)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    raw = text.strip().lower()
    if len(raw) < 2 or raw[-1] not in units or not raw[:-1].isdigit():
        raise ConfigError(
            f"bad duration {text!r}; write a whole number and a unit s, m, h, d or w (e.g. '90d')"
        )
    return timedelta(seconds=int(raw[:-1]) * units[raw[-1]])
