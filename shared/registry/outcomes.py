"""Live outcomes in the registry: one row per signal a bot acted on, its realised return once known.

Written by the farm's ingestion of the bots' outcome stream (:mod:`trainfarm.workers.outcomes`); read by
the trigger policies. A signal is identified by (bot, version, bar) (unique, migration 0004): recording it
again is a duplicate and changes nothing, except that a realised return fills a row that had none. So a
replayed or re-read stream never double-counts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from trainfarm.shared.registry.models import LiveOutcome


@dataclass(frozen=True)
class Signal:
    """One reported signal: who acted, on which version and bar, and (once known) what it returned."""

    bot_id: str
    symbol: str
    timeframe: str
    version: str
    at: datetime  #: the bar the signal was scored on
    signal: str
    probability: float
    realised_return: float | None = None


@dataclass(frozen=True)
class OutcomeCounts:
    """What one :meth:`OutcomesMixin.record_outcomes` call did."""

    inserted: int = 0
    updated: int = 0  #: realised returns filled in
    duplicates: int = 0


class OutcomesMixin:
    """Outcome methods of the registry; needs the registry's ``_session``."""

    _clock: Callable[[], datetime]

    def _session(self, *, write: bool) -> AbstractContextManager[Session]:  # pragma: no cover
        raise NotImplementedError  # provided by Registry

    def record_outcomes(self, signals: Sequence[Signal]) -> OutcomeCounts:
        """Store ``signals`` (one transaction); a signal already stored only fills a missing return."""
        inserted = updated = duplicates = 0
        with self._session(write=True) as s:
            for sig in signals:
                row = _find(s, sig)
                if row is None:
                    try:
                        with s.begin_nested():  # a concurrent ingester may insert the same signal
                            s.add(_row(sig))
                        inserted += 1
                        continue
                    except IntegrityError:
                        row = _find(s, sig)
                if row is not None and row.realised_return is None and sig.realised_return is not None:
                    row.realised_return = sig.realised_return
                    updated += 1
                else:
                    duplicates += 1
        return OutcomeCounts(inserted, updated, duplicates)

    def live_results(self, symbol: str, timeframe: str, version: str) -> list[tuple[datetime, float]]:
        """(bar, realised return) of ``version``'s signals in one market with a known return, oldest first."""
        stmt = (
            select(LiveOutcome.at, LiveOutcome.realised_return)
            .where(
                LiveOutcome.symbol == symbol,
                LiveOutcome.timeframe == timeframe,
                LiveOutcome.version == version,
                LiveOutcome.realised_return.is_not(None),
            )
            .order_by(LiveOutcome.at, LiveOutcome.id)
        )
        with self._session(write=False) as s:
            return [(at, float(r)) for at, r in s.execute(stmt) if r is not None]

    def realised_returns(self, symbol: str, timeframe: str, version: str) -> list[float]:
        """The realised returns of ``version``'s signals in one market, oldest bar first."""
        return [r for _, r in self.live_results(symbol, timeframe, version)]


def _find(s: Session, sig: Signal) -> LiveOutcome | None:
    stmt = select(LiveOutcome).where(
        LiveOutcome.bot_id == sig.bot_id, LiveOutcome.version == sig.version, LiveOutcome.at == sig.at
    )
    return s.scalars(stmt.with_for_update()).one_or_none()


def _row(sig: Signal) -> LiveOutcome:
    return LiveOutcome(
        bot_id=sig.bot_id,
        symbol=sig.symbol,
        timeframe=sig.timeframe,
        version=sig.version,
        at=sig.at,
        signal=sig.signal,
        probability=sig.probability,
        realised_return=sig.realised_return,
    )


__all__ = ["OutcomeCounts", "OutcomesMixin", "Signal"]
