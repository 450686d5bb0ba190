"""How current a symbol's bars are: the newest bar's close and its age, and whether that is stale.

A symbol with a source ([data] source / sources) is expected to stay current: its bars are ``stale_data``
once the newest one closed more than ``[data] stale_after`` of its source's intervals ago, plus one sync
cadence (the sync runs every ``[data] sync``, and the bar forming at the last sync closes after it). A
symbol without a source was imported by hand: its age is shown, and nothing is held back for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from trainfarm.shared.config import FarmConfig
from trainfarm.shared.data.store import BarStore
from trainfarm.shared.symbols import canonical_symbol
from trainfarm.shared.timeframes import format_duration


@dataclass(frozen=True)
class Freshness:
    """One symbol's data freshness. ``newest`` is when its newest stored bar (any interval) closed, None
    when nothing is stored; ``limit`` is the age past which it is stale, None when no source keeps it
    current."""

    symbol: str
    newest: datetime | None
    limit: timedelta | None

    @property
    def synced(self) -> bool:
        """Whether a source keeps this symbol current."""
        return self.limit is not None

    def age(self, now: datetime) -> timedelta | None:
        """How long ago the newest bar closed."""
        return None if self.newest is None else now - self.newest

    def stale(self, now: datetime) -> bool:
        """A synced symbol with no bars, or whose newest bar is older than the limit."""
        if self.limit is None:
            return False
        age = self.age(now)
        return age is None or age > self.limit

    def reason(self, now: datetime) -> str:
        """Why the symbol is stale (for the hold's message), or its age."""
        age = self.age(now)
        if age is None:
            return f"no bars of {self.symbol} are stored yet; the sync has not brought any (farm data sync)"
        limit = f" (limit {format_duration(self.limit)})" if self.limit is not None else ""
        assert self.newest is not None
        return (
            f"the newest bar of {self.symbol} closed {human_age(age)} ago at "
            f"{self.newest.isoformat()}{limit}; the sync has not brought newer bars (farm data sync)"
        )

    def to_json(self, now: datetime) -> dict[str, object]:
        """JSON-ready: newest close, age in seconds, the limit in seconds, stale."""
        age = self.age(now)
        return {
            "symbol": self.symbol,
            "newest_bar_close": self.newest.isoformat() if self.newest else None,
            "age_s": age.total_seconds() if age is not None else None,
            "stale_after_s": self.limit.total_seconds() if self.limit is not None else None,
            "stale": self.stale(now),
        }


def human_age(age: timedelta) -> str:
    """``age`` as people read it: "2d 3h", "3h 10m", "7m", "40s"."""
    seconds = max(0, int(age.total_seconds()))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m" if minutes else f"{secs}s"


def freshness(store: BarStore, config: FarmConfig, symbol: str) -> Freshness:
    """The freshness of ``symbol``'s stored bars under ``config``'s sources and limits."""
    symbol_id = canonical_symbol(symbol)
    newest = store.newest_close(symbol_id) if store.has(symbol_id) else None
    source = config.data.source_of(symbol_id)
    limit = None
    if source is not None:
        limit = config.data.stale_after * source.interval.duration + (config.data.sync or timedelta(0))
    return Freshness(symbol_id, newest, limit)
