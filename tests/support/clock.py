"""A test clock for the registry. A plain helper module (neither a test module nor a conftest)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta


class StepClock:
    """A clock that moves one second per reading, so 'newest first' never depends on timer resolution."""

    def __init__(self, start: datetime = datetime(2026, 1, 1, tzinfo=UTC)) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now
