"""Champions in the registry: promote, reject, roll back, the promotion history, and retention's pruning.

:class:`ChampionStore` is ``registry.champions``. A method that changes statuses locks every version of the
market first (``FOR UPDATE`` in id order on PostgreSQL; SQLite's write transaction holds the database's one
write lock already) and decides under that lock, so two workers promoting at once are serialised: exactly
one champion per (symbol, timeframe), and each promotion row names the champion it replaced.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from trainfarm.shared.errors import NoChampionError, PromotionRefusedError, RegistryConflictError
from trainfarm.shared.registry.database import Database
from trainfarm.shared.registry.models import (
    Promotion,
    PromotionReason,
    Version,
    VersionRecord,
    VersionStatus,
    json_safe,
)
from trainfarm.shared.registry.version_store import version_row
from trainfarm.shared.symbols import canonical_symbol
from trainfarm.shared.timeframes import Timeframe, parse_timeframe

ReasonLike = PromotionReason | Literal["gate", "manual", "rollback"]

#: Promotion times of one market increase strictly (``max(now, last + _TICK)``), whatever the clocks of the
#: machines promoting: Redis announcements are ordered by them (:mod:`trainfarm.shared.champions.announce`).
_TICK = timedelta(microseconds=1)


@dataclass(frozen=True)
class PromotionRecord:
    """One move of a market's champion, as stored; ``new`` is False for a promotion that changed nothing."""

    id: int
    symbol: str
    timeframe: str
    from_version: str | None
    to_version: str
    at: datetime
    reason: PromotionReason
    #: False when the version was champion already: this record is then the promotion that made it so.
    new: bool = True

    @classmethod
    def from_row(cls, row: Promotion, *, new: bool = True) -> PromotionRecord:
        return cls(
            id=row.id,
            symbol=row.symbol,
            timeframe=row.timeframe,
            from_version=row.from_version,
            to_version=row.to_version,
            at=row.at,
            reason=PromotionReason(row.reason),
            new=new,
        )

    def to_json(self) -> dict[str, object]:
        """JSON-safe dict (time ISO 8601 with offset)."""
        return {
            "id": self.id,
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "at": self.at.isoformat(),
            "reason": self.reason.value,
            "new": self.new,
        }


def _market(symbol: str, timeframe: Timeframe | str) -> tuple[str, str]:
    return canonical_symbol(symbol), parse_timeframe(timeframe).value


class ChampionStore:
    """Which version is each market's champion, and every move of it, one transaction per method."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # --- reads -----------------------------------------------------------------------------------------

    def get(self, symbol: str, timeframe: Timeframe | str) -> VersionRecord | None:
        """The champion of (symbol, timeframe), or None when it has none yet."""
        sym, tf = _market(symbol, timeframe)
        with self._db.read() as s:
            row = _champion_of(s, sym, tf)
            return VersionRecord.from_row(row) if row is not None else None

    def markets(self) -> list[tuple[str, str]]:
        """Every (symbol, timeframe) that has a champion, sorted (whether or not the universe lists it)."""
        stmt = select(Version.symbol, Version.timeframe).where(Version.status == VersionStatus.CHAMPION)
        with self._db.read() as s:
            return sorted((str(sym), str(tf)) for sym, tf in s.execute(stmt))

    def previous(self, symbol: str, timeframe: Timeframe | str) -> VersionRecord | None:
        """The version the current champion replaced (what a rollback returns to), or None."""
        sym, tf = _market(symbol, timeframe)
        with self._db.read() as s:
            champion = _champion_of(s, sym, tf)
            made = _promotion_that_made(s, champion) if champion is not None else None
            if made is None or made.from_version is None:
                return None
            previous = s.get(Version, made.from_version)
            return VersionRecord.from_row(previous) if previous is not None else None

    def history(self, symbol: str, timeframe: Timeframe | str) -> list[PromotionRecord]:
        """Every promotion of (symbol, timeframe), newest first."""
        sym, tf = _market(symbol, timeframe)
        stmt = (
            select(Promotion)
            .where(Promotion.symbol == sym, Promotion.timeframe == tf)
            .order_by(Promotion.at.desc(), Promotion.id.desc())
        )
        with self._db.read() as s:
            return [PromotionRecord.from_row(row) for row in s.scalars(stmt)]

    def prunable(self, symbol: str, timeframe: Timeframe | str, keep: int) -> list[VersionRecord]:
        """Versions whose packs retention may delete: beyond the newest ``keep``, never the champion or
        the previous champion, not pruned already; newest first."""
        sym, tf = _market(symbol, timeframe)
        with self._db.read() as s:
            return [VersionRecord.from_row(v) for v in _prunable(s, sym, tf, keep)]

    # --- writes ----------------------------------------------------------------------------------------

    def promote(
        self,
        version_id: str,
        *,
        reason: ReasonLike,
        gate_report: Mapping[str, object] | None = None,
    ) -> PromotionRecord:
        """Make ``version_id`` the champion of its market in one transaction, under the market lock.

        The current champion is retired and a promotion row records the move; ``gate_report`` (if given)
        is stored on the version. Promoting the champion again changes nothing and returns the promotion
        that made it champion (``new=False``). Raises :class:`VersionNotFoundError` for an unknown version
        and :class:`PromotionRefusedError` for a pruned one, or a rejected one unless ``reason`` is
        ``"manual"`` (a person overriding the gates; recorded as such).
        """
        why = PromotionReason(reason)
        report: dict[str, Any] | None = (
            json_safe(gate_report, "gate_report") if gate_report is not None else None
        )
        return self._switch(version_id, why, report, expect_previous_of=None)

    def rollback(
        self, symbol: str, timeframe: Timeframe | str, *, to_version: str | None = None
    ) -> PromotionRecord:
        """Make the previous champion the champion again (reason "rollback"), in one transaction.

        ``to_version``: the previous champion the caller prepared for (verified its pack). If it is the
        champion already (a concurrent rollback won), nothing changes (``new=False``); if the champion moved
        otherwise, :class:`PromotionRefusedError`. Without it, every call rolls back once more (two calls
        return to where they started). Raises :class:`NoChampionError` when the market has no champion
        or no previous one.
        """
        sym, tf = _market(symbol, timeframe)
        return self._switch(to_version, PromotionReason.ROLLBACK, None, expect_previous_of=(sym, tf))

    def reject(self, version_id: str, gate_report: Mapping[str, object]) -> VersionRecord:
        """Mark a version rejected with the gate report that rejected it (again: report replaced).

        The champion cannot be rejected (the market would be left without one): promote another version
        or roll back first (:class:`PromotionRefusedError`).
        """
        report = json_safe(gate_report, "gate_report")
        with self._db.write() as s:
            target = version_row(s, version_id)
            _lock_market(s, target.symbol, target.timeframe)
            if target.status is VersionStatus.CHAMPION:
                raise PromotionRefusedError(
                    f"version {version_id} is the champion of {target.symbol} {target.timeframe}; "
                    "promote another version or roll back before rejecting it"
                )
            target.status, target.gate_report = VersionStatus.REJECTED, report
            s.flush()
            return VersionRecord.from_row(target)

    def mark_pruned(self, symbol: str, timeframe: Timeframe | str, keep: int) -> list[VersionRecord]:
        """Mark :meth:`prunable` versions pruned (candidates also become retired), under the market lock.

        Call this *before* deleting their packs: a promotion that commits first is then excluded here
        (it is the champion), and one that comes after sees ``pruned_at`` and refuses.
        """
        sym, tf = _market(symbol, timeframe)
        with self._db.write() as s:
            _lock_market(s, sym, tf)
            now = self._db.now()
            marked = _prunable(s, sym, tf, keep)
            for row in marked:
                row.pruned_at = now
                if row.status is VersionStatus.CANDIDATE:
                    row.status = VersionStatus.RETIRED  # its pack is gone: it can never be promoted
            s.flush()
            return [VersionRecord.from_row(row) for row in marked]

    def _switch(
        self,
        version_id: str | None,
        why: PromotionReason,
        report: dict[str, Any] | None,
        *,
        expect_previous_of: tuple[str, str] | None,
    ) -> PromotionRecord:
        # One body for promote and rollback: lock, decide under the lock, demote, promote, record.
        try:
            with self._db.write() as s:
                if expect_previous_of is None:
                    assert version_id is not None
                    target = version_row(s, version_id)
                    rows = _lock_market(s, target.symbol, target.timeframe)
                else:
                    rows = _lock_market(s, *expect_previous_of)
                    target = _rollback_target(s, rows, *expect_previous_of, expected=version_id)
                champion = next((r for r in rows if r.status is VersionStatus.CHAMPION), None)
                if champion is target:
                    return _existing_promotion(s, target, why, self._db.now())
                _check_promotable(target, why)
                at = _next_time(s, target.symbol, target.timeframe, self._db.now())
                if champion is not None:
                    champion.status = VersionStatus.RETIRED
                    # Flushed before the new champion is marked: the one-champion partial index is checked per
                    # statement, and SQLAlchemy would otherwise order the two UPDATEs by primary key.
                    s.flush()
                target.status = VersionStatus.CHAMPION
                if report is not None:
                    target.gate_report = report
                row = Promotion(
                    symbol=target.symbol,
                    timeframe=target.timeframe,
                    from_version=champion.id if champion is not None else None,
                    to_version=target.id,
                    at=at,
                    reason=why,
                )
                s.add(row)
                s.flush()
                return PromotionRecord.from_row(row)
        except IntegrityError as exc:
            # Only reachable if a champion appeared without taking the market lock (a raw UPDATE).
            raise RegistryConflictError(
                f"promotion of {version_id} conflicts with the stored champion: {exc.orig}"
            ) from exc


def _lock_market(session: Session, symbol: str, timeframe: str) -> list[Version]:
    # FOR UPDATE on every version of the market, in id order so two lockers queue instead of deadlocking;
    # populate_existing so rows loaded before the wait are refreshed with what the previous holder committed.
    stmt = (
        select(Version)
        .where(Version.symbol == symbol, Version.timeframe == timeframe)
        .order_by(Version.id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    return list(session.scalars(stmt))


def _champion_of(session: Session, symbol: str, timeframe: str) -> Version | None:
    stmt = select(Version).where(
        Version.symbol == symbol, Version.timeframe == timeframe, Version.status == VersionStatus.CHAMPION
    )
    return session.scalars(stmt).one_or_none()


def _promotion_that_made(session: Session, champion: Version) -> Promotion | None:
    stmt = (
        select(Promotion)
        .where(Promotion.symbol == champion.symbol, Promotion.timeframe == champion.timeframe)
        .where(Promotion.to_version == champion.id)
        .order_by(Promotion.at.desc(), Promotion.id.desc())
        .limit(1)
    )
    return session.scalars(stmt).one_or_none()


def _rollback_target(
    session: Session, rows: list[Version], symbol: str, timeframe: str, *, expected: str | None
) -> Version:
    champion = next((r for r in rows if r.status is VersionStatus.CHAMPION), None)
    if champion is None:
        raise NoChampionError(f"{symbol} {timeframe} has no champion to roll back from")
    if expected is not None and champion.id == expected:
        return champion  # a concurrent rollback to the same version won already: nothing left to do
    made = _promotion_that_made(session, champion)
    if made is None or made.from_version is None:
        raise NoChampionError(
            f"{symbol} {timeframe} has no previous champion to roll back to (champion {champion.id} "
            "was the first)"
        )
    if expected is not None and made.from_version != expected:
        raise PromotionRefusedError(
            f"the champion of {symbol} {timeframe} changed meanwhile (now {champion.id}, previous "
            f"{made.from_version}, not {expected}); run the rollback again"
        )
    return version_row(session, made.from_version)


def _check_promotable(target: Version, why: PromotionReason) -> None:
    if target.pruned_at is not None:
        raise PromotionRefusedError(
            f"version {target.id} was pruned on {target.pruned_at:%Y-%m-%d} (its pack is deleted); "
            "it cannot be promoted"
        )
    if target.status is VersionStatus.REJECTED and why is not PromotionReason.MANUAL:
        raise PromotionRefusedError(
            f"version {target.id} was rejected by its gates; only a manual promotion "
            f"(`farm promote {target.id}`) may override that, not a {why.value} one"
        )


def _next_time(session: Session, symbol: str, timeframe: str, now: datetime) -> datetime:
    last = session.scalars(
        select(Promotion.at)
        .where(Promotion.symbol == symbol, Promotion.timeframe == timeframe)
        .order_by(Promotion.at.desc())
        .limit(1)
    ).one_or_none()
    return now if last is None or now > last else last + _TICK


def _existing_promotion(
    session: Session, champion: Version, why: PromotionReason, now: datetime
) -> PromotionRecord:
    made = _promotion_that_made(session, champion)
    if made is None:
        # Champion without history (set outside promote()): record it once, so every champion has the
        # promotion that made it and rollbacks and announcements have a time to work from.
        made = Promotion(
            symbol=champion.symbol,
            timeframe=champion.timeframe,
            from_version=None,
            to_version=champion.id,
            at=_next_time(session, champion.symbol, champion.timeframe, now),
            reason=why,
        )
        session.add(made)
        session.flush()
    return PromotionRecord.from_row(made, new=False)


def _prunable(session: Session, symbol: str, timeframe: str, keep: int) -> list[Version]:
    if keep < 0:
        raise ValueError(f"keep must be 0 or more, got {keep}")
    newest_first = session.scalars(
        select(Version)
        .where(Version.symbol == symbol, Version.timeframe == timeframe)
        .order_by(Version.created_at.desc(), Version.id.desc())
    ).all()
    protected: set[str] = set()
    champion = next((v for v in newest_first if v.status is VersionStatus.CHAMPION), None)
    if champion is not None:
        protected.add(champion.id)
        made = _promotion_that_made(session, champion)
        if made is not None and made.from_version is not None:
            protected.add(made.from_version)  # what `farm rollback` returns to
    return [v for v in newest_first[keep:] if v.id not in protected and v.pruned_at is None]


__all__ = ["ChampionStore", "PromotionRecord", "ReasonLike"]
