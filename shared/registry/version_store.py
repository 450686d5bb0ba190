"""Versions in the registry: what each successful run produced, its metrics, gate report and pack path.

:class:`VersionStore` is ``registry.versions``. Recording a version also marks its run succeeded, in the same
transaction. Status changes that involve the champion (promote, reject, roll back, prune) are
:class:`~trainfarm.shared.registry.champion_store.ChampionStore`'s.
"""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select
from sqlalchemy.orm import Session

from trainfarm.shared.errors import RegistryConflictError, VersionNotFoundError
from trainfarm.shared.registry.database import Database
from trainfarm.shared.registry.models import (
    RunStatus,
    Version,
    VersionRecord,
    VersionStatus,
    json_safe,
)
from trainfarm.shared.registry.run_store import run_row
from trainfarm.shared.symbols import canonical_symbol
from trainfarm.shared.timeframes import Timeframe, parse_timeframe


def version_row(session: Session, version_id: str) -> Version:
    """The version's row in ``session``; raises :class:`VersionNotFoundError`."""
    row = session.get(Version, version_id)
    if row is None:
        raise VersionNotFoundError(f"no version {version_id!r}; `farm models SYMBOL TIMEFRAME` lists them")
    return row


class VersionStore:
    """Versions of every market: recorded once per successful run, read by id or by market."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
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
        with self._db.write() as s:
            run = run_row(s, run_id, lock=True)
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
            now = self._db.now()
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

    def get(self, version_id: str) -> VersionRecord:
        """The version with this id; raises :class:`VersionNotFoundError`."""
        with self._db.read() as s:
            row = s.get(Version, version_id)
            if row is None:
                raise VersionNotFoundError(f"no version {version_id!r}")
            return VersionRecord.from_row(row)

    def of_market(
        self, symbol: str, timeframe: Timeframe | str, *, limit: int | None = None
    ) -> list[VersionRecord]:
        """Every version of one (symbol, timeframe), newest first (only the newest ``limit`` when given: a
        market retrained hourly has thousands, each with its metrics and gate report)."""
        stmt = (
            select(Version)
            .where(Version.symbol == canonical_symbol(symbol))
            .where(Version.timeframe == parse_timeframe(timeframe).value)
            .order_by(Version.created_at.desc(), Version.id.desc())
            .limit(limit)
        )
        with self._db.read() as s:
            return [VersionRecord.from_row(row) for row in s.scalars(stmt)]

    def set_gate_report(self, version_id: str, report: Mapping[str, object]) -> VersionRecord:
        """Store (replace) a version's gate report without changing its status."""
        safe = json_safe(report, "gate_report")
        with self._db.write() as s:
            target = version_row(s, version_id)
            target.gate_report = safe
            s.flush()
            return VersionRecord.from_row(target)


__all__ = ["VersionStore", "version_row"]
