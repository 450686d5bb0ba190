"""The registry's tables (SQLAlchemy 2 typed ORM) and the status vocabularies stored in them.

The schema itself is created by the Alembic migrations in ``shared/registry/migrations``; these classes
describe the same schema for queries, and a test checks that the two never drift apart. Constraint and
index names come from one naming convention so they are identical on SQLite and PostgreSQL (Alembic
compares and alters constraints by name).

Every time is timezone-aware UTC in Python. SQLite has no time zone type, so :class:`UTCDateTime` stores
naive UTC there (a fixed-width text that sorts chronologically) and hands aware UTC back; PostgreSQL stores
``timestamptz``.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

if TYPE_CHECKING:
    from _typeshed import DataclassInstance


class RunStatus(StrEnum):
    """Where a retrain run is. ``succeeded`` and ``failed`` are terminal: nothing moves a run out of them."""

    QUEUED = "queued"
    PREPARING = "preparing"
    TRAINING = "training"
    META = "meta"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        """True for succeeded and failed."""
        return self in (RunStatus.SUCCEEDED, RunStatus.FAILED)


#: SQL condition of an active (not yet ended) run; the partial unique index on runs uses it.
ACTIVE_RUN_WHERE = "status NOT IN ('succeeded', 'failed')"


class RunKind(StrEnum):
    """What a run trains: ``full`` (8 base models, stacker, calibration) or ``meta`` (the champion's base
    models kept; stacker and calibration refit on the bars after the champion's data)."""

    FULL = "full"
    META = "meta"


class BaseStatus(StrEnum):
    """State of one base model's training inside a run."""

    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class VersionStatus(StrEnum):
    """Lifecycle of a model version: a candidate becomes the champion or is rejected; champions retire."""

    CANDIDATE = "candidate"
    CHAMPION = "champion"
    REJECTED = "rejected"
    RETIRED = "retired"


class PromotionReason(StrEnum):
    """Why the champion pointer moved."""

    GATE = "gate"
    MANUAL = "manual"
    ROLLBACK = "rollback"


#: One convention for every constraint and index name; the initial migration spells out the same names.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend; naive datetimes are refused, not guessed at."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: the registry stores timezone-aware UTC only")
        value = value.astimezone(UTC)
        # SQLite's DATETIME text has no offset; storing naive UTC keeps it sortable and unambiguous.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _status(enum: type[StrEnum], name: str) -> Enum:
    # VARCHAR plus a CHECK constraint, not a PostgreSQL ENUM type: identical on both backends, and adding a
    # status later is a constraint change instead of an ALTER TYPE. Length leaves room for longer names.
    return Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    """Declarative base of the registry; its metadata is what the migrations must produce."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


class Run(Base):
    """One retrain run of one (symbol, timeframe): why it started, where it is, what it produced."""

    __tablename__ = "runs"
    __table_args__ = (
        Index(None, "symbol", "timeframe", "created_at"),
        # A run is never "succeeded" without the version it produced (add_version sets both at once).
        CheckConstraint("status <> 'succeeded' OR version IS NOT NULL", name="succeeded_has_version"),
        # At most one active run per (symbol, timeframe), enforced by the database (migration 0003): the
        # registry is the one source of truth for "a run of this market is under way", however long the
        # run waits in a queue. Triggers that lose the insert merge into the active run.
        Index(
            "uq_runs_one_active",
            "symbol",
            "timeframe",
            unique=True,
            sqlite_where=text(ACTIVE_RUN_WHERE),
            postgresql_where=text(ACTIVE_RUN_WHERE),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32))
    timeframe: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(Text)
    status: Mapped[RunStatus] = mapped_column(_status(RunStatus, "status"))
    # Migration 0005; a plain string (not an enum type) so that adding a kind needs no DDL.
    kind: Mapped[str] = mapped_column(String(8), default=RunKind.FULL.value, server_default="full")
    created_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    failed_model: Mapped[str | None] = mapped_column(String(64))
    snapshot_hash: Mapped[str | None] = mapped_column(String(128))
    snapshot_path: Mapped[str | None] = mapped_column(Text)
    config_hash: Mapped[str | None] = mapped_column(String(128))
    # No foreign key to versions: versions.run_id already points here, and a cycle would need deferred DDL.
    version: Mapped[str | None] = mapped_column(String(64))
    celery_task_id: Mapped[str | None] = mapped_column(String(64))


class BaseResult(Base):
    """One base model trained inside a run; at most one row per (run, model), however often a task runs."""

    __tablename__ = "base_results"
    __table_args__ = (UniqueConstraint("run_id", "model"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    model: Mapped[str] = mapped_column(String(64))
    # Nullable: a finish or failure can arrive for a model whose start was never recorded.
    family: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[BaseStatus] = mapped_column(_status(BaseStatus, "status"))
    seconds: Mapped[float | None] = mapped_column(Float)
    device: Mapped[str | None] = mapped_column(String(16))
    worker: Mapped[str | None] = mapped_column(String(255))
    metrics: Mapped[dict[str, Any]]
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class Version(Base):
    """One trained version of one (symbol, timeframe): its artifact pack, metrics and gate verdict."""

    __tablename__ = "versions"
    __table_args__ = (
        Index(None, "symbol", "timeframe", "created_at"),
        # At most one champion per (symbol, timeframe), enforced by the database so that two workers
        # promoting at once cannot both win (the second one's commit fails).
        Index(
            "uq_versions_one_champion",
            "symbol",
            "timeframe",
            unique=True,
            sqlite_where=text("status = 'champion'"),
            postgresql_where=text("status = 'champion'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    symbol: Mapped[str] = mapped_column(String(32))
    timeframe: Mapped[str] = mapped_column(String(8))
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    status: Mapped[VersionStatus] = mapped_column(_status(VersionStatus, "status"))
    created_at: Mapped[datetime]
    metrics: Mapped[dict[str, Any]]
    gate_report: Mapped[dict[str, Any] | None]
    path: Mapped[str] = mapped_column(Text)
    manifest_sha256: Mapped[str] = mapped_column(String(64))
    # When retention deleted the pack (migration 0002). Separate from status, so a pruned version still
    # says whether it was rejected or served as champion; a pruned version is never promoted again.
    pruned_at: Mapped[datetime | None]


class Promotion(Base):
    """The champion pointer of one (symbol, timeframe) moved from one version to another."""

    __tablename__ = "promotions"
    __table_args__ = (Index(None, "symbol", "timeframe", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    symbol: Mapped[str] = mapped_column(String(32))
    timeframe: Mapped[str] = mapped_column(String(8))
    from_version: Mapped[str | None] = mapped_column(ForeignKey("versions.id"))
    to_version: Mapped[str] = mapped_column(ForeignKey("versions.id"))
    at: Mapped[datetime]
    reason: Mapped[PromotionReason] = mapped_column(_status(PromotionReason, "reason"))


class LiveOutcome(Base):
    """A signal a live bot acted on and, once known, its realised return (filled by a later stage)."""

    __tablename__ = "live_outcomes"
    __table_args__ = (
        Index(None, "symbol", "timeframe", "at"),
        # One row per signal (migration 0004): a replayed report is a duplicate, never a second outcome.
        Index("uq_live_outcomes_signal", "bot_id", "version", "at", unique=True),
    )

    # BIGINT on PostgreSQL (outcomes accumulate); SQLite's rowid alias must be spelled INTEGER.
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True
    )
    bot_id: Mapped[str] = mapped_column(String(128))
    symbol: Mapped[str] = mapped_column(String(32))
    timeframe: Mapped[str] = mapped_column(String(8))
    # No foreign key: outcomes come from bots outside the farm and are kept even for unknown versions.
    version: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    signal: Mapped[str] = mapped_column(String(16))
    probability: Mapped[float] = mapped_column(Float)
    realised_return: Mapped[float | None] = mapped_column(Float)
    #: The features the bot computed for the bar: a JSON list of numbers in the pack's feature order
    #: (migration 0006; None for bots that do not report them).
    features: Mapped[str | None] = mapped_column(Text)


# --- Records: what the registry hands out. Frozen copies, so no caller holds a live ORM row or session. ---

MetricPath = str | tuple[str, ...]

#: Where a test log-loss may sit in a metrics dict (flat keys, or nested as the evaluation writes them).
TEST_LOGLOSS: tuple[MetricPath, ...] = ("test_logloss", ("test", "logloss"), "logloss")
META_LOGLOSS: tuple[MetricPath, ...] = ("meta_logloss", ("meta", "logloss"))
PRIOR_LOGLOSS: tuple[MetricPath, ...] = ("prior_logloss", ("prior", "logloss"))


def metric(metrics: Mapping[str, object], *paths: MetricPath) -> float | None:
    """The first of ``paths`` that holds a finite number in ``metrics`` (bools do not count), else None.

    The metrics dicts are written by other stages; reading them through this keeps a missing or oddly
    typed key a blank cell instead of an exception.
    """
    for path in paths:
        node: object = metrics
        for key in (path,) if isinstance(path, str) else path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, int | float) and not isinstance(node, bool) and math.isfinite(node):
            return float(node)
    return None


def json_safe(value: object, where: str) -> Any:
    """``value`` as plain JSON: finite floats (NaN and infinities become null), ints, str keys, lists.

    PostgreSQL refuses NaN in JSON and ``json.loads`` callers choke on it, so it is mapped here, once.
    numpy scalars pass (they register as numbers); anything else raises ValueError naming ``where``.
    """
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise ValueError(f"{where}: a {type(value).__name__} cannot be stored as JSON")


def _plain(value: object) -> object:
    """A record field as JSON: times as ISO 8601 with offset, statuses as strings, dicts copied."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, StrEnum):
        return value.value
    return copy.deepcopy(value) if isinstance(value, dict) else value


def _fields_of(record_type: type[DataclassInstance], row: object, **renamed: str) -> dict[str, Any]:
    """The row's values for the record's fields (``renamed``: field -> column); JSON dicts deep-copied."""
    values = {f.name: getattr(row, renamed.get(f.name, f.name)) for f in fields(record_type)}
    return {k: copy.deepcopy(v) if isinstance(v, dict) else v for k, v in values.items()}


def _to_json(record: DataclassInstance) -> dict[str, object]:
    return {f.name: _plain(getattr(record, f.name)) for f in fields(record)}


#: How a run's reasons are joined in its ``reason`` column (a merge appends; see ``RunStore.claim``).
REASON_SEPARATOR = " | "


def split_reasons(text: str) -> list[str]:
    """The reasons stored in one ``reason`` column, in the order they came."""
    return [r for r in (part.strip() for part in text.split(REASON_SEPARATOR)) if r]


def join_reasons(reasons: list[str]) -> str:
    """The ``reason`` column for ``reasons``."""
    return REASON_SEPARATOR.join(reasons)


@dataclass(frozen=True)
class RunRecord:
    """One retrain run as stored (``reason``: every reason that asked for it, see :attr:`reasons`)."""

    id: str
    symbol: str
    timeframe: str
    reason: str
    status: RunStatus
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None
    failed_model: str | None
    snapshot_hash: str | None
    snapshot_path: str | None
    config_hash: str | None
    version: str | None
    celery_task_id: str | None
    kind: RunKind = RunKind.FULL

    @classmethod
    def from_row(cls, row: Run) -> RunRecord:
        values = _fields_of(cls, row)
        values["kind"] = RunKind(values["kind"] or RunKind.FULL)
        return cls(**values)

    @property
    def reasons(self) -> list[str]:
        """Why the run exists: the first caller's reason, then each merged caller's (schedule, cli...)."""
        return split_reasons(self.reason)

    @property
    def seconds(self) -> float | None:
        """Wall time from the first step to the end (None while running or never started)."""
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def to_json(self) -> dict[str, object]:
        """JSON-safe dict (times ISO 8601 with offset), ``seconds`` added."""
        return _to_json(self) | {"seconds": self.seconds}


@dataclass(frozen=True)
class BaseResultRecord:
    """One base model's training inside a run."""

    run_id: str
    model: str
    family: str | None
    status: BaseStatus
    seconds: float | None
    device: str | None
    worker: str | None
    metrics: dict[str, Any]
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def from_row(cls, row: BaseResult) -> BaseResultRecord:
        return cls(**_fields_of(cls, row))

    @property
    def test_logloss(self) -> float | None:
        """The model's test log-loss, when its metrics carry one."""
        return metric(self.metrics, *TEST_LOGLOSS)

    def to_json(self) -> dict[str, object]:
        """JSON-safe dict (times ISO 8601 with offset)."""
        return _to_json(self)


@dataclass(frozen=True)
class VersionRecord:
    """One version of one (symbol, timeframe); ``version`` is its id."""

    version: str
    symbol: str
    timeframe: str
    run_id: str
    status: VersionStatus
    created_at: datetime
    metrics: dict[str, Any]
    gate_report: dict[str, Any] | None
    path: str
    manifest_sha256: str
    pruned_at: datetime | None

    @classmethod
    def from_row(cls, row: Version) -> VersionRecord:
        return cls(**_fields_of(cls, row, version="id"))

    @property
    def meta_logloss(self) -> float | None:
        """The calibrated meta-learner's test log-loss, when present in the metrics."""
        return metric(self.metrics, *META_LOGLOSS)

    @property
    def prior_logloss(self) -> float | None:
        """The class-prior baseline's test log-loss, when present in the metrics."""
        return metric(self.metrics, *PRIOR_LOGLOSS)

    def to_json(self) -> dict[str, object]:
        """JSON-safe dict (times ISO 8601 with offset)."""
        return _to_json(self)
