"""Parsing of option values several commands share."""

from __future__ import annotations

from datetime import UTC, datetime

from trainfarm.shared.errors import ConfigError


def utc_time(text: str, name: str) -> datetime:
    """``text`` (a date or ISO 8601 time; zone-less means UTC) as a UTC datetime; ``name`` is the option,
    named in the :class:`ConfigError` for anything else."""
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{name} {text!r} is not a date (YYYY-MM-DD, or an ISO 8601 time)") from None
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
