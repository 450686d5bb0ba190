"""The registry's replay tables: a replay of the farm over its own history, and its retrain points.

A replay lives in its own namespace: these tables, and ``<artifacts>/replays/<id>/`` for its snapshots,
packs and scores. Nothing here is a run, a version or a champion of the live farm, so no bot, trigger,
reaper or dashboard list of runs ever sees a replay's work (docs/replay.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from trainfarm.shared.registry.models import Base, _fields_of, _to_json
from trainfarm.shared.timeframes import format_duration


class ReplayStatus(StrEnum):
    """Where a replay is: ``running`` until its last point is scored (or it failed, or was interrupted)."""

    RUNNING = "running"
    INTERRUPTED = "interrupted"  #: its driver stopped (Ctrl-C); `farm replay resume` takes it up again
    FINISHED = "finished"
    FAILED = "failed"


class PointStatus(StrEnum):
    """Where one retrain point of a replay is: submitted to the workers, trained (pack written), failed."""

    PENDING = "pending"
    SUBMITTED = "submitted"
    TRAINED = "trained"
    FAILED = "failed"


class Replay(Base):
    """One replay: a market, a period, the retrain cadence, and (once finished) the policies' result."""

    __tablename__ = "replays"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32))
    timeframe: Mapped[str] = mapped_column(String(8))
    start: Mapped[datetime]
    end: Mapped[datetime]
    cadence_s: Mapped[int] = mapped_column(Integer)
    # Plain strings (not enum types), so that adding a status needs no DDL.
    status: Mapped[str] = mapped_column(String(16))
    config_hash: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None]


class ReplayPoint(Base):
    """One retrain point ``at`` of a replay: what trained there, how often, and the gated decision."""

    __tablename__ = "replay_points"
    __table_args__ = (UniqueConstraint("replay_id", "idx"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    replay_id: Mapped[str] = mapped_column(ForeignKey("replays.id", ondelete="CASCADE"))
    idx: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16))
    version: Mapped[str | None] = mapped_column(String(64))
    path: Mapped[str | None] = mapped_column(Text)
    manifest_sha256: Mapped[str | None] = mapped_column(String(64))
    #: Times the point's pack was built (1 for a point trained once, whatever was interrupted).
    trainings: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: Times a base model of the point started to fit (8 for a point trained once, uninterrupted).
    base_fits: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: The gate report of the gated policy's decision at this point (against its champion of the moment).
    decision: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    trained_at: Mapped[datetime | None]


@dataclass(frozen=True)
class ReplayRecord:
    """One replay as stored."""

    id: str
    symbol: str
    timeframe: str
    start: datetime
    end: datetime
    cadence_s: int
    status: ReplayStatus
    config_hash: str
    created_at: datetime
    finished_at: datetime | None
    error: str | None
    result: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: Replay) -> ReplayRecord:
        values = _fields_of(cls, row)
        values["status"] = ReplayStatus(values["status"])
        return cls(**values)

    @property
    def cadence(self) -> timedelta:
        """Time between two retrain points."""
        return timedelta(seconds=self.cadence_s)

    @property
    def cadence_text(self) -> str:
        """The cadence as the config spells durations (``7d``, ``12h``)."""
        return format_duration(self.cadence)

    def to_json(self) -> dict[str, object]:
        """JSON-safe dict (times ISO 8601 with offset)."""
        return _to_json(self)


@dataclass(frozen=True)
class ReplayPointRecord:
    """One retrain point of a replay as stored."""

    replay_id: str
    idx: int
    at: datetime
    status: PointStatus
    version: str | None
    path: str | None
    manifest_sha256: str | None
    trainings: int
    base_fits: int
    decision: dict[str, Any] | None
    error: str | None
    trained_at: datetime | None

    @classmethod
    def from_row(cls, row: ReplayPoint) -> ReplayPointRecord:
        values = _fields_of(cls, row)
        values["status"] = PointStatus(values["status"])
        return cls(**values)

    def to_json(self) -> dict[str, object]:
        """JSON-safe dict (times ISO 8601 with offset)."""
        return _to_json(self)


__all__ = ["PointStatus", "Replay", "ReplayPoint", "ReplayPointRecord", "ReplayRecord", "ReplayStatus"]
