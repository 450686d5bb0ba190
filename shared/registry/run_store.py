"""Runs and their per-model base results in the registry: claiming, status changes, and reads.

:class:`RunStore` is ``registry.runs``. Every method is one short transaction on the registry's
:class:`~trainfarm.shared.registry.database.Database` and returns frozen records. Writes are safe to repeat
(Celery delivers at least once): a repeated finish leaves one row, a failed or succeeded run never moves
again, and the first error recorded for a run is the one kept.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any
from uuid import uuid4

from sqlalchemy import ColumnElement, func, select, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from trainfarm.shared.errors import (
    ActiveRunExistsError,
    AmbiguousRunIdError,
    RegistryConflictError,
    RegistryError,
    RunNotFoundError,
)
from trainfarm.shared.registry.database import Database
from trainfarm.shared.registry.models import (
    ACTIVE_RUN_WHERE,
    BaseResult,
    BaseResultRecord,
    BaseStatus,
    Run,
    RunKind,
    RunRecord,
    RunStatus,
    join_reasons,
    json_safe,
    split_reasons,
)
from trainfarm.shared.symbols import canonical_symbol
from trainfarm.shared.timeframes import Timeframe, parse_timeframe

_RUN_ID = re.compile(r"^[0-9A-Za-z_-]{1,32}$")
#: INSERT .. ON CONFLICT constructs; both dialects spell the upsert the same way.
_UPSERT: dict[str, Callable[..., postgresql.Insert | sqlite.Insert]] = {
    "postgresql": postgresql.insert,
    "sqlite": sqlite.insert,
}


def run_row(session: Session, run_id: str, *, lock: bool = False) -> Run:
    """The run's row in ``session``; raises :class:`RunNotFoundError`. ``lock``: for a status change."""
    # FOR UPDATE serialises status changes of one run on PostgreSQL; SQLite's BEGIN IMMEDIATE already has.
    stmt = select(Run).where(Run.id == run_id)
    row = session.scalars(stmt.with_for_update() if lock else stmt).one_or_none()
    if row is None:
        raise RunNotFoundError(f"no run {run_id!r}")
    return row


class RunStore:
    """Runs (queued to succeeded or failed) and the base-model results recorded for each."""

    def __init__(self, db: Database) -> None:
        self._db = db

    # --- runs ---------------------------------------------------------------------------------------

    def create(
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
        active run: the database holds at most one per (symbol, timeframe). :meth:`claim` merges.
        """
        sym, tf = canonical_symbol(symbol), parse_timeframe(timeframe).value
        rid = run_id or uuid4().hex
        if not _RUN_ID.fullmatch(rid):
            raise RegistryError(f"invalid run id {rid!r}: up to 32 letters, digits, '_' or '-'")
        try:
            with self._db.write() as s:
                row = Run(
                    id=rid, symbol=sym, timeframe=tf, reason=reason, status=RunStatus.QUEUED, kind=kind.value
                )
                row.created_at = self._db.now()
                s.add(row)
                s.flush()
                return RunRecord.from_row(row)
        except IntegrityError as exc:
            # Created by a redelivered submit, or by a peer racing us: the same run is fine, another is not.
            try:
                existing = self.get(rid)
            except RunNotFoundError:
                active = self.active(sym, tf)
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

    def claim(
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
                return self.create(sym, tf, reason, run_id=run_id, kind=kind), True
            except ActiveRunExistsError as exc:
                try:
                    run = self.get(exc.run_id)
                except RunNotFoundError:
                    continue
                if not run.status.terminal:
                    return self._add_reason(run.id, reason), False
        raise RegistryConflictError(f"could not claim a run of {sym} {tf}: runs keep starting and ending")

    def _add_reason(self, run_id: str, reason: str) -> RunRecord:
        """Append ``reason`` to the run's reasons (once; row-locked, so concurrent mergers lose none)."""
        with self._db.write() as s:
            row = s.scalars(select(Run).where(Run.id == run_id).with_for_update()).one()
            if reason and reason not in split_reasons(row.reason):
                row.reason = join_reasons([*split_reasons(row.reason), reason])
            s.flush()
            return RunRecord.from_row(row)

    def active(self, symbol: str, timeframe: Timeframe | str) -> RunRecord | None:
        """The market's run that has not ended yet, if any (the database allows at most one)."""
        found = self.all_active(symbol, timeframe)
        return found[0] if found else None

    def all_active(
        self, symbol: str | None = None, timeframe: Timeframe | str | None = None
    ) -> list[RunRecord]:
        """Every run that has not ended yet, oldest first, optionally of one symbol and/or timeframe."""
        stmt = select(Run).where(text(ACTIVE_RUN_WHERE)).order_by(Run.created_at, Run.id)
        if symbol is not None:
            stmt = stmt.where(Run.symbol == canonical_symbol(symbol))
        if timeframe is not None:
            stmt = stmt.where(Run.timeframe == parse_timeframe(timeframe).value)
        with self._db.read() as s:
            return [RunRecord.from_row(row) for row in s.scalars(stmt)]

    def get(self, run_id: str) -> RunRecord:
        """The run with exactly this id; raises :class:`RunNotFoundError`."""
        with self._db.read() as s:
            return RunRecord.from_row(run_row(s, run_id))

    def get_many(self, run_ids: Iterable[str]) -> dict[str, RunRecord]:
        """The runs with these ids that exist, by id, in one query (a page listing many versions)."""
        wanted = sorted(set(run_ids))
        if not wanted:
            return {}
        stmt = select(Run).where(Run.id.in_(wanted))
        with self._db.read() as s:
            return {row.id: RunRecord.from_row(row) for row in s.scalars(stmt)}

    def find(self, prefix: str) -> RunRecord:
        """The run whose id is ``prefix`` or starts with it (as people type ids from `farm runs`)."""
        key = prefix.strip()
        if not _RUN_ID.fullmatch(key):
            raise RunNotFoundError(f"no run {prefix!r}")
        with self._db.read() as s:
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

    def counts(self) -> dict[tuple[str, str, str], int]:
        """How many runs there are per (timeframe, status, kind): what the metrics endpoint exports."""
        stmt = select(Run.timeframe, Run.status, Run.kind, func.count()).group_by(
            Run.timeframe, Run.status, Run.kind
        )
        with self._db.read() as s:
            return {(tf, RunStatus(st).value, kind): int(n) for tf, st, kind, n in s.execute(stmt)}

    def newest_created(self) -> dict[tuple[str, str, str], datetime]:
        """When each market's newest run of each kind was created, by (symbol, timeframe, kind): what the
        metrics endpoint exports so that Prometheus sees a market that no run has reached for a cadence."""
        stmt = select(Run.symbol, Run.timeframe, Run.kind, func.max(Run.created_at)).group_by(
            Run.symbol, Run.timeframe, Run.kind
        )
        with self._db.read() as s:
            return {(symbol, tf, kind): at for symbol, tf, kind, at in s.execute(stmt) if at is not None}

    def newest(
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
        with self._db.read() as s:
            return [RunRecord.from_row(row) for row in s.scalars(stmt)]

    def set_status(
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
        only through :meth:`VersionStore.add`, which records its version in the same transaction.
        """
        new = RunStatus(status)
        if new is RunStatus.SUCCEEDED:
            raise ValueError("a run succeeds only through versions.add(), which records its version")
        with self._db.write() as s:
            run = run_row(s, run_id, lock=True)
            if run.status.terminal:
                return False
            now = self._db.now()
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

    def fail(self, run_id: str, error: str, failed_model: str | None = None) -> bool:
        """Mark a run failed; False when it had ended already (its first error, or success, is kept)."""
        return self.set_status(run_id, RunStatus.FAILED, error=error, failed_model=failed_model)

    # --- base-model results -------------------------------------------------------------------------

    def base_started(
        self, run_id: str, model: str, family: str | None, device: str | None, worker: str | None
    ) -> BaseResultRecord:
        """Record that a base model started training (again, for a redelivered task that had not won)."""
        restart: dict[str, Any] = {
            "family": family,
            "device": device,
            "worker": worker,
            "started_at": self._db.now(),
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
            "finished_at": self._db.now(),
        }
        insert = update | {"family": family, "device": device, "worker": worker}
        return self._upsert(run_id, model, insert, update, BaseResult.status != BaseStatus.SUCCEEDED)

    def base_failed(self, run_id: str, model: str, error: str) -> BaseResultRecord:
        """Record a base model's failure; a success or an earlier failure (its first error) is kept."""
        update = {"status": BaseStatus.FAILED, "error": error, "finished_at": self._db.now()}
        return self._upsert(
            run_id, model, update | {"metrics": {}}, update, BaseResult.status == BaseStatus.RUNNING
        )

    def base_results(self, run_id: str) -> list[BaseResultRecord]:
        """Every base model recorded for the run, by model name; raises :class:`RunNotFoundError`."""
        with self._db.read() as s:
            run_row(s, run_id)
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
        with self._db.read() as s:
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
        with self._db.write() as s:
            run_row(s, run_id)
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


__all__ = ["RunStore", "run_row"]
