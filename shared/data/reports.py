"""What the bar store reports: a symbol's bars at one interval, an import's or sync's outcome, a check."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from trainfarm.shared.data.gaps import Gap
from trainfarm.shared.data.intervals import BarInterval


def iso(moment: datetime) -> str:
    """``moment`` in ISO 8601, as records and reports write it."""
    return moment.isoformat()


@dataclass(frozen=True)
class StoreSummary:
    """What the store holds for one symbol at one interval."""

    symbol: str
    first: datetime
    last: datetime
    rows: int
    gaps: list[Gap] = field(default_factory=list)
    interval: BarInterval = BarInterval.M5

    @property
    def end(self) -> datetime:
        """When the newest stored bar closed."""
        return self.last + self.interval.duration

    @property
    def missing_bars(self) -> int:
        """Total bars missing inside [first, last]."""
        return sum(gap.missing for gap in self.gaps)

    def to_json(self) -> dict[str, object]:
        """JSON-ready summary; ``gaps`` is the number of gaps (see :meth:`gap_list` for the gaps)."""
        return {
            "symbol": self.symbol,
            "interval": self.interval.value,
            "first": iso(self.first),
            "last": iso(self.last),
            "rows": self.rows,
            "gaps": len(self.gaps),
        }

    def gap_list(self) -> list[dict[str, object]]:
        """The gaps, JSON-ready."""
        return [gap.to_json() for gap in self.gaps]


@dataclass(frozen=True)
class ImportReport:
    """Outcome of one import or sync. ``first``, ``last``, ``rows_total`` and ``gaps`` describe the stored
    series of ``interval`` after it; ``rows_in_file``, ``rows_added`` and ``rows_revised`` the new bars."""

    symbol: str
    file: str
    rows_in_file: int
    rows_added: int
    rows_total: int
    first: datetime
    last: datetime
    gaps: list[Gap] = field(default_factory=list)
    interval: BarInterval = BarInterval.M5
    rows_revised: int = 0

    def to_json(self) -> dict[str, object]:
        """JSON-ready report, gaps included."""
        return {
            "symbol": self.symbol,
            "interval": self.interval.value,
            "file": self.file,
            "rows_in_file": self.rows_in_file,
            "rows_added": self.rows_added,
            "rows_revised": self.rows_revised,
            "rows_total": self.rows_total,
            "first": iso(self.first),
            "last": iso(self.last),
            "gaps": [gap.to_json() for gap in self.gaps],
        }


@dataclass(frozen=True)
class CheckReport:
    """Result of :meth:`BarStore.check`: every interval's data is valid and matches the record, and the
    intervals agree. ``summary`` is the finest interval's; ``summaries`` has them all, finest first."""

    summary: StoreSummary
    gaps: list[Gap]
    missing_bars: int
    sources: int
    summaries: list[StoreSummary] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        """JSON-ready report: the finest summary plus its gap list, missing-bar total and source count,
        and every interval's summary."""
        return {
            **self.summary.to_json(),
            "gap_list": self.summary.gap_list(),
            "missing_bars": self.missing_bars,
            "sources": self.sources,
            "intervals": [s.to_json() for s in self.summaries],
        }
