"""Keeping the store current: new closed bars from each symbol's source, through the import's validation.

One sync of one symbol (:func:`sync_symbol`):

1. asks the source for bars from the newest stored bar on (that bar again, so a revision of it is seen;
   everything the source has when nothing is stored; ``since`` when given). An exchange pages from there;
   a folder source returns its whole file, every row of which is then compared with the store;
2. validates them whole, like an imported file (order, duplicates, non-finite values, the grid), and
   refuses a bar that opens after ``now`` (a source from the future is wrong about everything);
3. drops the bar still forming (it closes after ``now``): only closed bars are ever stored;
4. merges the rest (:meth:`BarStore.append`): a bar stored with other values is an exchange revision,
   refused and reported unless ``replace``; a missing stretch stays a gap, never filled.

Nothing partial is written: any refusal leaves the store byte for byte as it was. A source that cannot
answer (down, rate-limited, a file being written) is reported in one line and tried again next time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum

import polars as pl

from trainfarm.shared.config import FarmConfig, SourceConfig
from trainfarm.shared.data.intervals import BarInterval
from trainfarm.shared.data.sources import BarSource
from trainfarm.shared.data.store import BarStore
from trainfarm.shared.data.validation import validate_bars
from trainfarm.shared.errors import (
    ConfigError,
    DataError,
    DataNotFoundError,
    SourceUnavailableError,
    SymbolError,
)
from trainfarm.shared.symbols import canonical_symbol


class Outcome(StrEnum):
    """How one symbol's sync ended."""

    SYNCED = "synced"  #: new (or, with replace, revised) bars were stored
    CURRENT = "current"  #: the source had no closed bar the store lacks
    UNAVAILABLE = "unavailable"  #: the source could not answer; tried again next time
    REFUSED = "refused"  #: the source's bars were wrong (or the symbol unknown to it); nothing written
    NO_SOURCE = "no source"  #: no source is configured for the symbol


@dataclass(frozen=True)
class SyncReport:
    """What one sync of one symbol did. ``newest`` is the newest stored bar's open time afterwards."""

    symbol: str
    outcome: Outcome
    source: str = ""
    interval: BarInterval | None = None
    added: int = 0
    revised: int = 0
    newest: datetime | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        """Whether the store is as current as the source allowed (nothing refused or unreachable)."""
        return self.outcome in (Outcome.SYNCED, Outcome.CURRENT, Outcome.NO_SOURCE)

    def line(self) -> str:
        """One line for a person or a log."""
        what = f"{self.symbol} {self.interval}" if self.interval else self.symbol
        newest = f", newest bar {self.newest:%Y-%m-%d %H:%M} UTC" if self.newest else ""
        if self.outcome is Outcome.SYNCED:
            revised = f", {self.revised} revised" if self.revised else ""
            return f"{what}: {self.added} new bar(s) from {self.source}{revised}{newest}"
        if self.outcome is Outcome.CURRENT:
            return f"{what}: up to date with {self.source}{newest}"
        return f"{what}: {self.outcome}: {self.message}"

    def to_json(self) -> dict[str, object]:
        """JSON-ready report."""
        return {
            "symbol": self.symbol,
            "outcome": self.outcome.value,
            "source": self.source,
            "interval": self.interval.value if self.interval else None,
            "added": self.added,
            "revised": self.revised,
            "newest": self.newest.isoformat() if self.newest else None,
            "message": self.message,
        }


def closed_bars(bars: pl.DataFrame, interval: BarInterval, *, origin: str, now: datetime) -> pl.DataFrame:
    """``bars`` validated and cut to those closed by ``now``; :class:`DataError` names a bad row.

    The bar forming at ``now`` is dropped without a word (every exchange serves it); one that opens after
    ``now`` is refused.
    """
    if bars.is_empty():
        return bars
    validate_bars(bars, file=origin, min_rows=1, interval=interval)
    future = bars.with_row_index("_row", offset=1).filter(pl.col("date") > now).head(1)
    if future.height:
        row = future.row(0, named=True)
        raise DataError(
            f"bar at {row['date'].isoformat()} opens after now ({now.isoformat(timespec='seconds')}); "
            "a source serving bars from the future is wrong, so nothing was written",
            file=origin,
            column="date",
            row=int(row["_row"]),
        )
    return bars.filter(pl.col("date") + interval.duration <= now)


def sync_symbol(
    store: BarStore,
    symbol: str,
    source: BarSource,
    interval: BarInterval,
    *,
    now: datetime | None = None,
    since: datetime | None = None,
    replace: bool = False,
) -> SyncReport:
    """Sync ``symbol``'s ``interval`` bars from ``source`` (see the module docstring); never raises for
    what the source did: the report says it."""
    symbol = canonical_symbol(symbol)
    now = now or datetime.now(UTC)
    report = SyncReport(symbol=symbol, outcome=Outcome.CURRENT, source=source.name, interval=interval)
    stored = store.summary(symbol, interval) if interval in store.intervals(symbol) else None
    start = since or (stored.last if stored else None)
    try:
        fetched = source.fetch(symbol, interval, since=start, now=now)
        bars = closed_bars(fetched.bars, interval, origin=fetched.origin, now=now)
        if bars.is_empty():
            newest = stored.last if stored else None
            return _with(report, newest=newest, message="no closed bar yet" if stored is None else "")
        appended = store.append(
            symbol, interval, bars, origin=fetched.origin, source=source.name, replace=replace
        )
    except SourceUnavailableError as exc:
        return _with(report, outcome=Outcome.UNAVAILABLE, message=_one_line(exc))
    except (DataError, SymbolError, DataNotFoundError, ConfigError) as exc:
        return _with(report, outcome=Outcome.REFUSED, message=_one_line(exc))
    outcome = Outcome.SYNCED if appended.rows_added or appended.rows_revised else Outcome.CURRENT
    return _with(
        report,
        outcome=outcome,
        added=appended.rows_added,
        revised=appended.rows_revised,
        newest=appended.last,
    )


def _with(report: SyncReport, **changes: object) -> SyncReport:
    return dataclasses.replace(report, **changes)  # type: ignore[arg-type]


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())


SourceFactory = Callable[[SourceConfig], BarSource]


def open_source(config: SourceConfig) -> BarSource:
    """The source a :class:`SourceConfig` describes (ccxt is imported only for an exchange source)."""
    if config.kind == "folder":
        from trainfarm.shared.data.sources.folder import FolderSource

        assert config.folder is not None  # SourceConfig refuses a folder source without one
        return FolderSource(config.folder)
    from trainfarm.shared.data.sources.exchange import ExchangeSource

    return ExchangeSource(config.exchange, api_url=config.api_url)


def sync_all(
    store: BarStore,
    config: FarmConfig,
    symbols: Iterable[str] | None = None,
    *,
    now: datetime | None = None,
    since: datetime | None = None,
    replace: bool = False,
    open_source: SourceFactory = open_source,
) -> list[SyncReport]:
    """Sync ``symbols`` (default: the universe's) from their configured sources, one report each.

    Sources are shared between symbols with the same config (one ccxt client loads its markets once).
    """
    opened: dict[SourceConfig, BarSource] = {}
    reports = []
    for symbol in symbols if symbols is not None else config.universe.symbols:
        symbol_id = canonical_symbol(symbol)
        source_config = config.data.source_of(symbol_id)
        if source_config is None:
            reports.append(
                SyncReport(
                    symbol=symbol_id,
                    outcome=Outcome.NO_SOURCE,
                    message="no source configured ([data] source or [data.sources] in the config file)",
                )
            )
            continue
        if source_config not in opened:
            try:
                opened[source_config] = open_source(source_config)
            except ConfigError as exc:  # ccxt missing, an exchange ccxt does not know: said per symbol
                reports.append(SyncReport(symbol=symbol_id, outcome=Outcome.REFUSED, message=_one_line(exc)))
                continue
        reports.append(
            sync_symbol(
                store,
                symbol_id,
                opened[source_config],
                source_config.interval,
                now=now,
                since=since,
                replace=replace,
            )
        )
    return reports
