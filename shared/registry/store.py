"""The registry: runs, per-model results and versions, on SQLite (default) or PostgreSQL.

Every method is one short transaction and returns frozen records, never live ORM rows, so Celery tasks,
the CLI and bots can call it from any process or thread without sharing sessions. Writes are safe to
repeat (Celery delivers at least once): a repeated finish leaves one row, a failed or succeeded run never
moves again, and the first error recorded for a run is the one kept. How connections are set up for
several writing processes is in :mod:`trainfarm.shared.registry.migrations`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import URL, ColumnElement, Engine, func, make_url, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from trainfarm.shared.errors import FarmError
from trainfarm.shared.registry.errors import (
    ActiveRunExistsError,
    AmbiguousRunIdError,
    NoChampionError,
    PromotionRefusedError,
    RegistryConflictError,
    RegistryError,
    RegistryUnavailableError,
    RunNotFoundError,
    VersionNotFoundError,
)
from trainfarm.shared.registry.migrations import SQLITE_BEGIN, create_registry_engine, migrate, shared_engine
from trainfarm.shared.registry.models import (
    ACTIVE_RUN_WHERE,
    BaseResult,
    BaseResultRecord,
    BaseStatus,
    Run,
    RunKind,
    RunRecord,
    RunStatus,
    Version,
    VersionRecord,
    VersionStatus,
    join_reasons,
    json_safe,
    split_reasons,
)
from trainfarm.shared.registry.outcomes import OutcomesMixin
from trainfarm.shared.registry.promotions import PromotionRecord, PromotionsMixin
from trainfarm.shared.settings import get_settings
from trainfarm.shared.symbols import canonical_symbol
from trainfarm.shared.timeframes import Timeframe, parse_timeframe

_RUN_ID = re.compile(r"^[0-9A-Za-z_-]{1,32}$")
#: INSERT .. ON CONFLICT constructs; both dialects spell the upsert the same way.
_UPSERT: dict[str, Callable[..., postgresql.Insert | sqlite.Insert]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _unavailable(url: URL, exc: OperationalError) -> FarmError:
    where = url.render_as_string(hide_password=True)
    message = str(exc.orig) if exc.orig is not None else str(exc)
    # On SQLite only lock contention is passing; "no such table" or a bad path will not heal by retrying.
    transient = url.get_backend_name() != "sqlite" or "locked" in message or "busy" in message
    cls = RegistryUnavailableError if transient else RegistryError
    return cls(f"registry database {where}: {message.strip().splitlines()[0] if message else exc}")


def upgrade(url: str) -> None:
    """Migrate the registry database at ``url`` to the newest schema (safe to call from many processes)."""
    engine = create_registry_engine(url)
    try:
        migrate(engine)
    except OperationalError as exc:
        raise _unavailable(engine.url, exc) from exc
    finally:
        engine.dispose()


class Registry(PromotionsMixin, OutcomesMixin):
    """Runs, base-model results and versions; one short transaction per method.

    Champion methods (promote, reject, rollback, history, retention) come from
    :class:`~trainfarm.shared.registry.promotions.PromotionsMixin`.
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utc_now) -> None:
        """Wrap an engine whose database is migrated already (see :meth:`open` and :func:`upgrade`)."""
        self.engine = engine
        self._clock = clock
        self._writer = sessionmaker(engine, expire_on_commit=False)
        self._reader = sessionmaker(
            engine.execution_options(**{SQLITE_BEGIN: "DEFERRED"}), expire_on_commit=False
        )

    @classmethod
    def open(cls, url: str | None = None, *, clock: Callable[[], datetime] | None = None) -> Registry:
        """The registry at ``url`` (default: the settings' database), migrated to head once per process."""
        target = url or get_settings().database
        try:
            engine = shared_engine(target)
        except OperationalError as exc:
            raise _unavailable(make_url(target), exc) from exc
        return cls(engine, clock=clock or utc_now)

    def close(self) -> None:
        """Close the engine's idle connections (it stays usable; new connections open on demand)."""
        self.engine.dispose()

    def __enter__(self) -> Registry:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _session(self, *, write: bool) -> Iterator[Session]:
        try:
            with (self._writer if write else self._reader)() as session, session.begin():
                yield session
        except OperationalError as exc:
            raise _unavailable(self.engine.url, exc) from exc

    # --- runs ---------------------------------------------------------------------------------------

    def create_run(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        reason: str,
        *,
        run_id: str | None = None,
        kind: RunKind = RunKind.FULL,
    ) -> RunRecord:
        """Record a queued run of ``kind``; with an explicit ``run_id`` that exists already, return that run.

        Raises :class:`ActiveRunExistsError` (naming the active run) when the market already has an
        active run: the database holds at most one per (symbol, timeframe). :meth:`claim_run` merges.
        """
        sym, tf = canonical_symbol(symbol), parse_timeframe(timeframe).value
        rid = run_id or uuid4().hex
        if not _RUN_ID.fullmatch(rid):
            raise RegistryError(f"invalid run id {rid!r}: up to 32 letters, digits, '_' or '-'")
        try:
            with self._session(write=True) as s:
                row = Run(
                    id=rid, symbol=sym, timeframe=tf, reason=reason, status=RunStatus.QUEUED, kind=kind.value
                )
                row.created_at = self._clock()
                s.add(row)
                s.flush()
                return RunRecord.from_row(row)
        except IntegrityError as exc:
            # Created by a redelivered submit, or by a peer racing us: the same run is fine, another is not.
            try:
                existing = self.get_run(rid)
            except RunNotFoundError:
                active = self.active_run(sym, tf)
                if active is not None:
                    raise ActiveRunExistsError(
                        f"{sym} {tf} already has an active run, {active.id} ({active.status})",
                        run_id=active.id,
                    ) from None
                raise exc from None  # not an id clash nor an active run: some other constraint refused it
            if (existing.symbol, existing.timeframe) != (sym, tf):
                raise RegistryConflictError(
                    f"run id {rid} belongs to {existing.symbol} {existing.timeframe}, not {sym} {tf}"
                ) from None
            return existing

    def claim_run(
        self,
        symbol: str,
        timeframe: Timeframe | str,
        reason: str,
        *,
        run_id: str | None = None,
        kind: RunKind = RunKind.FULL,
    ) -> tuple[RunRecord, bool]:
        """The market's active run: a new queued one (``True``) unless one is active already (``False``).

        Atomic across processes: the unique index on active runs lets exactly one concurrent claimer
        insert; the others get the winner's run, whatever its kind (``reason`` joins its reasons).
        """
        sym, tf = canonical_symbol(symbol), parse_timeframe(timeframe).value
        for _ in range(5):  # bounded: each pass inserts, or finds an active run, or saw one end meanwhile
            try:
                return self.create_run(sym, tf, reason, run_id=run_id, kind=kind), True
            except ActiveRunExistsError as exc:
                try:
                    run = self.get_run(exc.run_id)
                except RunNotFoundError:
                    continue
                if not run.status.terminal:
                    return self._add_reason(run.id, reason), False
        raise RegistryConflictError(f"could not claim a run of {sym} {tf}: runs keep starting and ending")

    def _add_reason(self, run_id: str, reason: str) -> RunRecord:
        """Append ``reason`` to the run's reasons (once; row-locked, so concurrent mergers lose none)."""
        with self._session(write=True) as s:
            row = s.scalars(select(Run).where(Run.id == run_id).with_for_update()).one()
            if reason and reason not in split_reasons(row.reason):
                row.reason = join_reasons([*split_reasons(row.reason), reason])
            s.flush()
            return RunRecord.from_row(row)

    def active_run(self, symbol: str, timeframe: Timeframe | str) -> RunRecord | None:
        """The market's run that has not ended yet, if any (the database allows at most one)."""
        found = self.active_runs(symbol, timeframe)
        return found[0] if found else None

    def active_runs(
        self, symbol: str | None = None, timeframe: Timeframe | str | None = None
    ) -> list[RunRecord]:
        """Every run that has not ended yet, oldest first, optionally of one symbol and/or timeframe."""
        stmt = select(Run).where(text(ACTIVE_RUN_WHERE)).order_by(Run.created_at, Run.id)
        if symbol is not None:
            stmt = stmt.where(Run.symbol == canonical_symbol(symbol))
        if timeframe is not None:
            stmt = stmt.where(Run.timeframe == parse_timeframe(timeframe).value)
        with self._session(write=False) as s:
            return [RunRecord.from_row(row) for row in s.scalars(stmt)]

    def get_run(self, run_id: str) -> RunRecord:
        """The run with exactly this id; raises :class:`RunNotFoundError`."""
        with self._session(write=False) as s:
            return RunRecord.from_row(_run(s, run_id))

    def find_run(self, prefix: str) -> RunRecord:
        """The run whose id is ``prefix`` or starts with it (as people type ids from `farm runs`)."""
        key = prefix.strip()
        if not _RUN_ID.fullmatch(key):
            raise RunNotFoundError(f"no run {prefix!r}")
        with self._session(write=False) as s:
            exact = s.get(Run, key)
            if exact is not None:
                return RunRecord.from_row(exact)
            # Case-insensitive: generated ids are lower-case hex, people may type them in capitals.
            matching = select(Run).where(Run.id.istartswith(key, autoescape=True)).limit(2)
            rows = s.scalars(matching).all()
            if not rows:
                raise RunNotFoundError(f"no run {prefix!r}; `farm runs` lists them")
            if len(rows) > 1:
                raise AmbiguousRunIdError(f"run id prefix {prefix!r} matches several runs; type more of it")
            return RunRecord.from_row(rows[0])

    def run_counts(self) -> dict[tuple[str, str, str], int]:
        """How many runs there are per (timeframe, status, kind): what the metrics endpoint exports."""
        stmt = select(Run.timeframe, Run.status, Run.kind, func.count()).group_by(
            Run.timeframe, Run.status, Run.kind
        )
        with self._session(write=False) as s:
            return {(tf, RunStatus(st).value, kind): int(n) for tf, st, kind, n in s.execute(stmt)}

    def list_runs(
        self, symbol: str | None = None, timeframe: Timeframe | str | None = None, limit: int = 50
    ) -> list[RunRecord]:
        """Runs, newest first, optionally of one symbol and/or timeframe."""
        if limit < 1:
            raise ValueError(f"limit must be positive, got {limit}")
        stmt = select(Run).order_by(Run.created_at.desc(), Run.id.desc()).limit(limit)
        if symbol is not None:
            stmt = stmt.where(Run.symbol == canonical_symbol(symbol))
        if timeframe is not None:
            stmt = stmt.where(Run.timeframe == parse_timeframe(timeframe).value)
        with self._session(write=False) as s:
            return [RunRecord.from_row(row) for row in s.scalars(stmt)]

    def set_run_status(
        self,
        run_id: str,
        status: RunStatus | str,
        *,
        error: str | None = None,
        failed_model: str | None = None,
        snapshot_hash: str | None = None,
        snapshot_path: str | None = None,
        config_hash: str | None = None,
        celery_task_id: str | None = None,
    ) -> bool:
        """Move a run to ``status`` and record the fields given; False (nothing changed) if it has ended.

        Sets ``started_at`` on the first move out of queued and ``finished_at`` on failed. A run succeeds
        only through :meth:`add_version`, which records its version in the same transaction.
        """
        new = RunStatus(status)
        if new is RunStatus.SUCCEEDED:
            raise ValueError("a run succeeds only through add_version(), which records its version")
        with self._session(write=True) as s:
            run = _run(s, run_id, lock=True)
            if run.status.terminal:
                return False
            now = self._clock()
            if new is not RunStatus.QUEUED and run.started_at is None:
                run.started_at = now
            if new.terminal:
                run.finished_at = now
            run.status = new
            run.error = error if error is not None else run.error
            run.failed_model = failed_model if failed_model is not None else run.failed_model
            run.snapshot_hash = snapshot_hash if snapshot_hash is not None else run.snapshot_hash
            run.snapshot_path = snapshot_path if snapshot_path is not None else run.snapshot_path
            run.config_hash = config_hash if config_hash is not None else run.config_hash
            run.celery_task_id = celery_task_id if celery_task_id is not None else run.celery_task_id
            return True

    def fail_run(self, run_id: str, error: str, failed_model: str | None = None) -> bool:
        """Mark a run failed; False when it had ended already (its first error, or success, is kept)."""
        return self.set_run_status(run_id, RunStatus.FAILED, error=error, failed_model=failed_model)

    # --- base-model results -------------------------------------------------------------------------

    def base_started(
        self, run_id: str, model: str, family: str | None, device: str | None, worker: str | None
    ) -> BaseResultRecord:
        """Record that a base model started training (again, for a redelivered task that had not won)."""
        restart: dict[str, Any] = {
            "family": family,
            "device": device,
            "worker": worker,
            "started_at": self._clock(),
            "status": BaseStatus.RUNNING,
            "seconds": None,
            "metrics": {},
            "error": None,
            "finished_at": None,
        }
        # A model that succeeded keeps its result; a redelivery of its task changes nothing here.
        return self._upsert(run_id, model, restart, restart, BaseResult.status != BaseStatus.SUCCEEDED)

    def base_finished(
        self,
        run_id: str,
        model: str,
        *,
        seconds: float,
        metrics: Mapping[str, object],
        family: str | None = None,
        device: str | None = None,
        worker: str | None = None,
    ) -> BaseResultRecord:
        """Record a base model's success; the first success is kept, a repeated one changes nothing."""
        update = {
            "status": BaseStatus.SUCCEEDED,
            "seconds": float(seconds),
            "metrics": json_safe(metrics, "metrics"),
            "error": None,
            "finished_at": self._clock(),
        }
        insert = update | {"family": family, "device": device, "worker": worker}
        return self._upsert(run_id, model, insert, update, BaseResult.status != BaseStatus.SUCCEEDED)

    def base_failed(self, run_id: str, model: str, error: str) -> BaseResultRecord:
        """Record a base model's failure; a success or an earlier failure (its first error) is kept."""
        update = {"status": BaseStatus.FAILED, "error": error, "finished_at": self._clock()}
        return self._upsert(
            run_id, model, update | {"metrics": {}}, update, BaseResult.status == BaseStatus.RUNNING
        )

    def base_results(self, run_id: str) -> list[BaseResultRecord]:
        """Every base model recorded for the run, by model name; raises :class:`RunNotFoundError`."""
        with self._session(write=False) as s:
            _run(s, run_id)
            rows = s.scalars(select(BaseResult).where(BaseResult.run_id == run_id).order_by(BaseResult.model))
            return [BaseResultRecord.from_row(row) for row in rows]

    def recent_base_seconds(self, limit: int = 4000) -> list[tuple[str, float]]:
        """(model, training seconds) of the newest finished base models, newest first (for the metrics)."""
        stmt = (
            select(BaseResult.model, BaseResult.seconds)
            .where(BaseResult.seconds.is_not(None), BaseResult.finished_at.is_not(None))
            .order_by(BaseResult.finished_at.desc())
            .limit(limit)
        )
        with self._session(write=False) as s:
            return [(str(model), float(seconds)) for model, seconds in s.execute(stmt) if seconds is not None]

    def _upsert(
        self,
        run_id: str,
        model: str,
        insert: dict[str, Any],
        update: dict[str, Any],
        where: ColumnElement[bool],
    ) -> BaseResultRecord:
        # INSERT .. ON CONFLICT (run_id, model) DO UPDATE .. WHERE: one atomic statement, so two tasks
        # finishing the same model at once leave one row and neither fails (both SQLite and PostgreSQL).
        values = insert | {"run_id": run_id, "model": model}
        # A start that does not know family, device or worker keeps what an earlier start recorded.
        keep = {"family", "device", "worker"} & update.keys()
        with self._session(write=True) as s:
            _run(s, run_id)
            dialect = s.get_bind().dialect.name
            if dialect not in _UPSERT:  # pragma: no cover - settings document SQLite and PostgreSQL only
                raise RegistryError(f"the registry supports SQLite and PostgreSQL, not {dialect}")
            stmt = _UPSERT[dialect](BaseResult).values(values)
            table = BaseResult.__table__.c
            setters = update | {k: func.coalesce(stmt.excluded[k], table[k]) for k in keep}
            s.execute(
                stmt.on_conflict_do_update(index_elements=["run_id", "model"], set_=setters, where=where)
            )
            row = s.scalars(
                select(BaseResult)
                .where(BaseResult.run_id == run_id, BaseResult.model == model)
                .execution_options(populate_existing=True)
            ).one()
            return BaseResultRecord.from_row(row)

    # --- versions -----------------------------------------------------------------------------------

    def add_version(
        self,
        version_id: str,
        symbol: str,
        timeframe: Timeframe | str,
        run_id: str,
        *,
        metrics: Mapping[str, object],
        path: str,
        manifest_sha256: str,
        status: VersionStatus | str = VersionStatus.CANDIDATE,
        gate_report: Mapping[str, object] | None = None,
    ) -> VersionRecord:
        """Record the version a run produced and, in the same transaction, mark the run succeeded.

        Repeating the call for the same run and version returns the stored version. Raises
        :class:`RegistryConflictError` when the run has ended otherwise (failed, or succeeded with another
        version) or belongs to another market.
        """
        sym, tf = canonical_symbol(symbol), parse_timeframe(timeframe).value
        safe_metrics = json_safe(metrics, "metrics")
        safe_report = json_safe(gate_report, "gate_report") if gate_report is not None else None
        with self._session(write=True) as s:
            run = _run(s, run_id, lock=True)
            existing = s.get(Version, version_id)
            if existing is not None and existing.run_id == run_id and run.version == version_id:
                return VersionRecord.from_row(existing)  # a redelivered meta task
            if existing is not None:
                raise RegistryConflictError(f"version {version_id} exists already (run {existing.run_id})")
            if run.status.terminal:
                detail = f"version {run.version}" if run.version else f"error: {run.error}"
                raise RegistryConflictError(f"run {run_id} has ended ({run.status.value}, {detail})")
            if (run.symbol, run.timeframe) != (sym, tf):
                raise RegistryConflictError(
                    f"run {run_id} trains {run.symbol} {run.timeframe}, not {sym} {tf}"
                )
            now = self._clock()
            row = Version(
                id=version_id,
                symbol=sym,
                timeframe=tf,
                run_id=run_id,
                status=VersionStatus(status),
                created_at=now,
                metrics=safe_metrics,
                gate_report=safe_report,
                path=path,
                manifest_sha256=manifest_sha256,
            )
            s.add(row)
            run.status, run.version, run.finished_at = RunStatus.SUCCEEDED, version_id, now
            run.started_at = run.started_at or now
            s.flush()
            return VersionRecord.from_row(row)

    def get_version(self, version_id: str) -> VersionRecord:
        """The version with this id; raises :class:`VersionNotFoundError`."""
        with self._session(write=False) as s:
            row = s.get(Version, version_id)
            if row is None:
                raise VersionNotFoundError(f"no version {version_id!r}")
            return VersionRecord.from_row(row)

    def list_versions(self, symbol: str, timeframe: Timeframe | str) -> list[VersionRecord]:
        """Every version of one (symbol, timeframe), newest first."""
        stmt = (
            select(Version)
            .where(Version.symbol == canonical_symbol(symbol))
            .where(Version.timeframe == parse_timeframe(timeframe).value)
            .order_by(Version.created_at.desc(), Version.id.desc())
        )
        with self._session(write=False) as s:
            return [VersionRecord.from_row(row) for row in s.scalars(stmt)]


def _run(session: Session, run_id: str, *, lock: bool = False) -> Run:
    # FOR UPDATE serialises status changes of one run on PostgreSQL; SQLite's BEGIN IMMEDIATE already has.
    stmt = select(Run).where(Run.id == run_id)
    row = session.scalars(stmt.with_for_update() if lock else stmt).one_or_none()
    if row is None:
        raise RunNotFoundError(f"no run {run_id!r}")
    return row


__all__ = [
    "AmbiguousRunIdError",
    "NoChampionError",
    "PromotionRecord",
    "PromotionRefusedError",
    "Registry",
    "RegistryConflictError",
    "RegistryError",
    "RegistryUnavailableError",
    "RunNotFoundError",
    "VersionNotFoundError",
    "upgrade",
    "utc_now",
]
