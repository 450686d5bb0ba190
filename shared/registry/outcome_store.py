"""Live outcomes in the registry: one row per signal a bot acted on, its realised return once known.

:class:`OutcomeStore` is ``registry.outcomes``: written by the ingestion of the bots' outcome stream
(:mod:`trainfarm.workers.checks.outcome_ingest`), read by the trigger policies. A signal is identified by
(bot, version, bar): recording it again changes nothing, except that a realised return or the bot's features
fill a row that had none, so a replayed or re-read stream never double-counts.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from trainfarm.shared.monitoring.drift import features_json
from trainfarm.shared.registry.database import Database
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
    #: the feature values the bot computed for ``at``, in the pack's feature order (None: not reported)
    features: tuple[float, ...] | None = None


@dataclass(frozen=True)
class OutcomeCounts:
    """What one :meth:`OutcomeStore.record` call did."""

    inserted: int = 0
    updated: int = 0  #: realised returns (or reported features) filled in
    duplicates: int = 0


class OutcomeStore:
    """The signals bots acted on, recorded once each, and the returns and features read back per version."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(self, signals: Sequence[Signal]) -> OutcomeCounts:
        """Store ``signals`` (one transaction); a signal already stored only fills a missing return."""
        inserted = updated = duplicates = 0
        with self._db.write() as s:
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
                if row is not None and _fill(row, sig):
                    updated += 1
                else:
                    duplicates += 1
        return OutcomeCounts(inserted, updated, duplicates)

    def live_features(
        self, symbol: str, timeframe: str, version: str, *, limit: int
    ) -> list[tuple[datetime, tuple[float, ...]]]:
        """(bar, features) of ``version``'s latest ``limit`` signals in one market that carry features,
        oldest first (one per reporting bot and bar)."""
        stmt = (
            select(LiveOutcome.at, LiveOutcome.features)
            .where(
                LiveOutcome.symbol == symbol,
                LiveOutcome.timeframe == timeframe,
                LiveOutcome.version == version,
                LiveOutcome.features.is_not(None),
            )
            .order_by(LiveOutcome.at.desc(), LiveOutcome.id.desc())
            .limit(max(0, limit))
        )
        with self._db.read() as s:
            rows = [(at, text) for at, text in s.execute(stmt) if text is not None]
        return [(at, tuple(float(v) for v in json.loads(text))) for at, text in reversed(rows)]

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
        with self._db.read() as s:
            return [(at, float(r)) for at, r in s.execute(stmt) if r is not None]

    def realised_returns(self, symbol: str, timeframe: str, version: str) -> list[float]:
        """The realised returns of ``version``'s signals in one market, oldest bar first."""
        return [r for _, r in self.live_results(symbol, timeframe, version)]


def _find(s: Session, sig: Signal) -> LiveOutcome | None:
    stmt = select(LiveOutcome).where(
        LiveOutcome.bot_id == sig.bot_id, LiveOutcome.version == sig.version, LiveOutcome.at == sig.at
    )
    return s.scalars(stmt.with_for_update()).one_or_none()


def _fill(row: LiveOutcome, sig: Signal) -> bool:
    """Fill what ``row`` lacks (realised return, features) from a later report of it; True when it did."""
    filled = False
    if row.realised_return is None and sig.realised_return is not None:
        row.realised_return = sig.realised_return
        filled = True
    if row.features is None and sig.features is not None:
        row.features = features_json(sig.features)
        filled = True
    return filled


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
        features=None if sig.features is None else features_json(sig.features),
    )


__all__ = ["OutcomeCounts", "OutcomeStore", "Signal"]
