"""Challengers and the bots' paired scores in the registry (``registry.shadows``).

Every method is one short transaction and returns frozen records. Starting a challenger ends the market's
active one (``superseded``) in the same transaction, so the database's one-active index never refuses a
start; two starters at once are serialised by that index (the loser's commit fails and it retries).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from trainfarm.shared.errors import ShadowRefusedError
from trainfarm.shared.registry.database import Database
from trainfarm.shared.registry.models import json_safe
from trainfarm.shared.registry.shadow_models import (
    Challenger,
    ChallengerOutcome,
    ChallengerRecord,
    ShadowScore,
)


@dataclass(frozen=True)
class PairedScore:
    """One bar scored by the champion and the challenger (as the first reporting bot sent it)."""

    symbol: str
    timeframe: str
    at: datetime
    bot_id: str
    champion: str
    challenger: str
    champion_probabilities: tuple[float, float, float]
    challenger_probabilities: tuple[float, float, float]
    champion_signal: str | None
    challenger_signal: str | None


@dataclass(frozen=True)
class ScoreCounts:
    """What one :meth:`ShadowStore.record` call did: new bars, and bars another report had stored."""

    inserted: int = 0
    duplicates: int = 0


class ShadowStore:
    """Challengers (active and ended) and the paired scores the bots reported."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def start(
        self, symbol: str, timeframe: str, version: str, champion_version: str, *, started_by: str
    ) -> tuple[ChallengerRecord, ChallengerRecord | None]:
        """Make ``version`` the market's challenger against ``champion_version``; the active challenger it
        replaces (ended ``superseded``) comes second, or None. ``version`` already the active challenger:
        nothing changes and that record comes back."""
        with self._db.write() as s:
            current = _active(s, symbol, timeframe)
            if current is not None and current.version == version:
                return ChallengerRecord.from_row(current), None
            now = self._db.now()
            replaced = None
            if current is not None:
                _end(current, now, ChallengerOutcome.SUPERSEDED, f"replaced by {version}", None)
                replaced = ChallengerRecord.from_row(current)
                s.flush()
            row = Challenger(
                symbol=symbol,
                timeframe=timeframe,
                version=version,
                champion_version=champion_version,
                started_by=started_by,
                started_at=now,
            )
            s.add(row)
            s.flush()
            return ChallengerRecord.from_row(row), replaced

    def end(
        self,
        challenger_id: int,
        outcome: ChallengerOutcome,
        reason: str,
        verdict: Mapping[str, object] | None = None,
    ) -> ChallengerRecord:
        """End an active challenger with ``outcome``; an ended one comes back as it is (decided once)."""
        with self._db.write() as s:
            row = s.get(Challenger, challenger_id, with_for_update=True)
            if row is None:
                raise ShadowRefusedError(f"no challenger with id {challenger_id}")
            if row.ended_at is None:
                _end(row, self._db.now(), outcome, reason, verdict)
            return ChallengerRecord.from_row(row)

    def active(self, symbol: str, timeframe: str) -> ChallengerRecord | None:
        """The market's active challenger, or None."""
        with self._db.read() as s:
            row = _active(s, symbol, timeframe)
            return ChallengerRecord.from_row(row) if row is not None else None

    def all_active(self) -> list[ChallengerRecord]:
        """Every active challenger, oldest first."""
        with self._db.read() as s:
            rows = s.scalars(select(Challenger).where(Challenger.ended_at.is_(None)).order_by(Challenger.id))
            return [ChallengerRecord.from_row(r) for r in rows]

    def history(
        self, symbol: str | None = None, timeframe: str | None = None, *, limit: int = 50
    ) -> list[ChallengerRecord]:
        """Challengers newest first, of one market or all."""
        stmt = select(Challenger).order_by(Challenger.id.desc()).limit(limit)
        if symbol is not None:
            stmt = stmt.where(Challenger.symbol == symbol)
        if timeframe is not None:
            stmt = stmt.where(Challenger.timeframe == timeframe)
        with self._db.read() as s:
            return [ChallengerRecord.from_row(r) for r in s.scalars(stmt)]

    def of_version(self, version: str) -> list[ChallengerRecord]:
        """Every challenger record of ``version``, oldest first."""
        with self._db.read() as s:
            rows = s.scalars(select(Challenger).where(Challenger.version == version).order_by(Challenger.id))
            return [ChallengerRecord.from_row(r) for r in rows]

    def record(self, scores: Sequence[PairedScore]) -> ScoreCounts:
        """Store paired scores (one transaction); a bar already stored for the pair is a duplicate."""
        inserted = duplicates = 0
        with self._db.write() as s:
            for score in scores:
                if _stored(s, score):
                    duplicates += 1
                    continue
                try:
                    with s.begin_nested():  # a concurrent ingester may store the same bar
                        s.add(_row(score))
                    inserted += 1
                except IntegrityError:
                    duplicates += 1
        return ScoreCounts(inserted, duplicates)

    def paired(self, challenger: str, champion: str) -> list[PairedScore]:
        """The bars scored by both ``challenger`` and ``champion``, oldest first."""
        stmt = (
            select(ShadowScore)
            .where(ShadowScore.challenger_version == challenger, ShadowScore.champion_version == champion)
            .order_by(ShadowScore.at)
        )
        with self._db.read() as s:
            return [_record(r) for r in s.scalars(stmt)]

    def count(self, challenger: str, champion: str) -> int:
        """How many bars ``challenger`` and ``champion`` were scored on together."""
        stmt = select(func.count(ShadowScore.id)).where(
            ShadowScore.challenger_version == challenger, ShadowScore.champion_version == champion
        )
        with self._db.read() as s:
            return int(s.execute(stmt).scalar_one())


def _active(s: Session, symbol: str, timeframe: str) -> Challenger | None:
    stmt = select(Challenger).where(
        Challenger.symbol == symbol, Challenger.timeframe == timeframe, Challenger.ended_at.is_(None)
    )
    return s.scalars(stmt.with_for_update()).one_or_none()


def _end(
    row: Challenger,
    now: datetime,
    outcome: ChallengerOutcome,
    reason: str,
    verdict: Mapping[str, object] | None,
) -> None:
    row.ended_at = now
    row.outcome = outcome.value
    row.reason = reason
    row.verdict = None if verdict is None else json_safe(dict(verdict), "verdict")


def _stored(s: Session, score: PairedScore) -> bool:
    stmt = select(ShadowScore.id).where(
        ShadowScore.challenger_version == score.challenger,
        ShadowScore.champion_version == score.champion,
        ShadowScore.at == score.at,
    )
    return s.execute(stmt).first() is not None


def _row(score: PairedScore) -> ShadowScore:
    return ShadowScore(
        symbol=score.symbol,
        timeframe=score.timeframe,
        challenger_version=score.challenger,
        champion_version=score.champion,
        at=score.at,
        bot_id=score.bot_id,
        champion_probabilities=json.dumps(list(score.champion_probabilities)),
        challenger_probabilities=json.dumps(list(score.challenger_probabilities)),
        champion_signal=score.champion_signal or "",
        challenger_signal=score.challenger_signal or "",
    )


def _probs(text: str) -> tuple[float, float, float]:
    down, neutral, up = (float(v) for v in json.loads(text))
    return down, neutral, up


def _record(row: ShadowScore) -> PairedScore:
    return PairedScore(
        symbol=row.symbol,
        timeframe=row.timeframe,
        at=row.at,
        bot_id=row.bot_id,
        champion=row.champion_version,
        challenger=row.challenger_version,
        champion_probabilities=_probs(row.champion_probabilities),
        challenger_probabilities=_probs(row.challenger_probabilities),
        champion_signal=row.champion_signal or None,
        challenger_signal=row.challenger_signal or None,
    )


__all__ = ["PairedScore", "ScoreCounts", "ShadowStore"]
