"""Replays and their retrain points in the registry (``registry.replays``).

Every method is one short transaction and returns frozen records. Writes are safe to repeat where Celery
may repeat them: a point's status only moves forward to ``trained``, and its counters (``trainings``,
``base_fits``) count every start, which is how a resumed replay shows that no point trained twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from uuid import uuid4

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from trainfarm.shared.errors import AmbiguousRunIdError, ReplayNotFoundError
from trainfarm.shared.registry.database import Database
from trainfarm.shared.registry.models import json_safe
from trainfarm.shared.registry.replay_models import (
    PointStatus,
    Replay,
    ReplayPoint,
    ReplayPointRecord,
    ReplayRecord,
    ReplayStatus,
)


class ReplayStore:
    """Replays (running, finished or failed) and the retrain points of each."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        symbol: str,
        timeframe: str,
        *,
        start: datetime,
        end: datetime,
        cadence: timedelta,
        points: Sequence[datetime],
        config_hash: str,
    ) -> ReplayRecord:
        """Record a new running replay and its ``points`` (all pending), in one transaction."""
        replay_id = uuid4().hex[:16]
        with self._db.write() as session:
            row = Replay(
                id=replay_id,
                symbol=symbol,
                timeframe=timeframe,
                start=start,
                end=end,
                cadence_s=int(cadence.total_seconds()),
                status=ReplayStatus.RUNNING.value,
                config_hash=config_hash,
                created_at=self._db.now(),
            )
            session.add(row)
            session.flush()
            session.add_all(
                ReplayPoint(replay_id=replay_id, idx=i, at=at, status=PointStatus.PENDING.value)
                for i, at in enumerate(points)
            )
            session.flush()
            return ReplayRecord.from_row(row)

    def get(self, replay_id: str) -> ReplayRecord:
        """The replay whose id is or starts with ``replay_id``; :class:`ReplayNotFoundError` otherwise."""
        with self._db.read() as session:
            return ReplayRecord.from_row(_replay_row(session, replay_id))

    def recent(self, *, limit: int = 100) -> list[ReplayRecord]:
        """The newest replays first."""
        with self._db.read() as session:
            rows = session.scalars(select(Replay).order_by(Replay.created_at.desc()).limit(limit))
            return [ReplayRecord.from_row(r) for r in rows]

    def points(self, replay_id: str) -> list[ReplayPointRecord]:
        """The replay's retrain points in time order."""
        with self._db.read() as session:
            rows = session.scalars(
                select(ReplayPoint).where(ReplayPoint.replay_id == replay_id).order_by(ReplayPoint.idx)
            )
            return [ReplayPointRecord.from_row(r) for r in rows]

    def point(self, replay_id: str, idx: int) -> ReplayPointRecord:
        """One retrain point; :class:`ReplayNotFoundError` when the replay has no such point."""
        with self._db.read() as session:
            return ReplayPointRecord.from_row(_point_row(session, replay_id, idx))

    def submitted(self, replay_id: str, idx: int) -> None:
        """Mark a point submitted to the workers (a trained point stays trained)."""
        with self._db.write() as session:
            row = _point_row(session, replay_id, idx)
            if row.status != PointStatus.TRAINED.value:
                row.status, row.error = PointStatus.SUBMITTED.value, None

    def base_started(self, replay_id: str, idx: int) -> None:
        """Count one more base-model fit starting at the point."""
        with self._db.write() as session:
            session.execute(
                update(ReplayPoint)
                .where(ReplayPoint.replay_id == replay_id, ReplayPoint.idx == idx)
                .values(base_fits=ReplayPoint.base_fits + 1)
            )

    def trained(self, replay_id: str, idx: int, *, version: str, path: str, manifest_sha256: str) -> None:
        """Record the point's written pack (and count the build)."""
        with self._db.write() as session:
            row = _point_row(session, replay_id, idx)
            row.status, row.error = PointStatus.TRAINED.value, None
            row.version, row.path, row.manifest_sha256 = version, path, manifest_sha256
            row.trainings += 1
            row.trained_at = self._db.now()

    def point_failed(self, replay_id: str, idx: int, error: str) -> None:
        """Record that the point's training failed (a trained point stays trained)."""
        with self._db.write() as session:
            row = _point_row(session, replay_id, idx)
            if row.status != PointStatus.TRAINED.value:
                row.status, row.error = PointStatus.FAILED.value, error

    def decided(self, replay_id: str, idx: int, decision: Mapping[str, Any]) -> None:
        """Store the gated policy's gate report at the point."""
        with self._db.write() as session:
            _point_row(session, replay_id, idx).decision = json_safe(dict(decision), "decision")

    def resumed(self, replay_id: str) -> None:
        """A replay taken up again runs (its error, if any, is cleared)."""
        with self._db.write() as session:
            row = _replay_row(session, replay_id)
            row.status, row.error, row.finished_at = ReplayStatus.RUNNING.value, None, None

    def finish(self, replay_id: str, result: Mapping[str, Any]) -> ReplayRecord:
        """Store the replay's result and mark it finished."""
        with self._db.write() as session:
            row = _replay_row(session, replay_id)
            row.status, row.result, row.error = ReplayStatus.FINISHED.value, json_safe(result, "result"), None
            row.finished_at = self._db.now()
            return ReplayRecord.from_row(row)

    def fail(self, replay_id: str, error: str, *, status: ReplayStatus = ReplayStatus.FAILED) -> None:
        """Mark the replay failed (or interrupted) with ``error``; ``farm replay resume`` resumes it."""
        with self._db.write() as session:
            row = _replay_row(session, replay_id)
            row.status, row.error, row.finished_at = status.value, error, self._db.now()

    def delete(self, replay_id: str) -> None:
        """Remove the replay and its points (the caller removes its folder)."""
        with self._db.write() as session:
            row = _replay_row(session, replay_id)
            session.execute(delete(ReplayPoint).where(ReplayPoint.replay_id == row.id))
            session.delete(row)


def _replay_row(session: Session, replay_id: str) -> Replay:
    if not replay_id or len(replay_id) > 32 or not replay_id.isalnum():
        raise ReplayNotFoundError(f"no replay {replay_id!r}")
    rows = list(session.scalars(select(Replay).where(Replay.id.startswith(replay_id)).limit(2)))
    if not rows:
        raise ReplayNotFoundError(f"no replay {replay_id!r} (farm replay list shows them)")
    if len(rows) > 1:
        raise AmbiguousRunIdError(f"replay id {replay_id!r} matches several replays; give more of it")
    return rows[0]


def _point_row(session: Session, replay_id: str, idx: int) -> ReplayPoint:
    row = session.scalars(
        select(ReplayPoint).where(ReplayPoint.replay_id == replay_id, ReplayPoint.idx == idx)
    ).one_or_none()
    if row is None:
        raise ReplayNotFoundError(f"replay {replay_id!r} has no point {idx}")
    return row


__all__ = ["ReplayStore"]
