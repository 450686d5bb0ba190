"""The registry's shadow tables: challengers (a version scored live beside the champion) and their scores.

A challenger is a version that passed the gates (or an operator chose, `farm shadow`) and that bots score
on every newest bar beside the champion, acting on the champion only. The bots' paired scores are rows of
``shadow_scores``, one per (challenger, champion, bar) however many bots reported it; the farm decides
once per challenger from them (:mod:`trainfarm.shared.evaluation.shadow_test`). A challenger row ends with
an ``outcome``; at most one challenger per market is active (``ended_at`` null), enforced by the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from trainfarm.shared.registry.models import Base, _fields_of, _to_json


class ChallengerOutcome(StrEnum):
    """How a challenger ended."""

    PROMOTED = "promoted"  #: the shadow test found it better: it became the champion
    RETIRED = "retired"  #: worse on the live bars, not better, or no decision within its age limit
    STOPPED = "stopped"  #: an operator stopped it (`farm shadow --stop`)
    SUPERSEDED = "superseded"  #: another challenger took its place, or the champion changed under it


class Challenger(Base):
    """One challenger of one market: the version, the champion it is compared with, and how it ended."""

    __tablename__ = "challengers"
    __table_args__ = (
        Index(None, "symbol", "timeframe", "started_at"),
        # One active challenger per market, whatever two deciders or operators do at once.
        Index(
            "uq_challengers_one_active",
            "symbol",
            "timeframe",
            unique=True,
            sqlite_where=text("ended_at IS NULL"),
            postgresql_where=text("ended_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    symbol: Mapped[str] = mapped_column(String(32))
    timeframe: Mapped[str] = mapped_column(String(8))
    version: Mapped[str] = mapped_column(ForeignKey("versions.id"))
    champion_version: Mapped[str] = mapped_column(ForeignKey("versions.id"))
    started_by: Mapped[str] = mapped_column(String(16))  #: gate or manual
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
    # A plain string (not an enum type), so that adding an outcome needs no DDL.
    outcome: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    verdict: Mapped[dict[str, Any] | None]


class ShadowScore(Base):
    """One bar scored by a challenger and the champion of the moment (the first bot's report counts)."""

    __tablename__ = "shadow_scores"
    __table_args__ = (
        Index("uq_shadow_scores_pair_bar", "challenger_version", "champion_version", "at", unique=True),
    )

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    symbol: Mapped[str] = mapped_column(String(32))
    timeframe: Mapped[str] = mapped_column(String(8))
    # No foreign keys: scores come from bots outside the farm.
    challenger_version: Mapped[str] = mapped_column(String(64))
    champion_version: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    bot_id: Mapped[str] = mapped_column(String(128))
    #: JSON lists (down, neutral, up), as the bot sent them.
    champion_probabilities: Mapped[str] = mapped_column(Text)
    challenger_probabilities: Mapped[str] = mapped_column(Text)
    champion_signal: Mapped[str] = mapped_column(String(8))  #: up, down or empty (no signal)
    challenger_signal: Mapped[str] = mapped_column(String(8))


@dataclass(frozen=True)
class ChallengerRecord:
    """One challenger as stored."""

    id: int
    symbol: str
    timeframe: str
    version: str
    champion_version: str
    started_by: str
    started_at: datetime
    ended_at: datetime | None
    outcome: ChallengerOutcome | None
    reason: str | None
    verdict: dict[str, Any] | None

    @classmethod
    def from_row(cls, row: Challenger) -> ChallengerRecord:
        values = _fields_of(cls, row)
        values["outcome"] = ChallengerOutcome(values["outcome"]) if values["outcome"] else None
        return cls(**values)

    @property
    def active(self) -> bool:
        """True until the challenger has ended."""
        return self.ended_at is None

    def to_json(self) -> dict[str, object]:
        """JSON-safe dict (times ISO 8601 with offset)."""
        return _to_json(self) | {"active": self.active}


__all__ = ["Challenger", "ChallengerOutcome", "ChallengerRecord", "ShadowScore"]
