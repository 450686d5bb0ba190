"""Promotion, rollback, rejection and retention of model versions: the stage after the gates, Celery-free.

A promotion verifies the pack, then commits the registry transaction (:meth:`ChampionStore.promote`: the
truth about who is champion), replaces the ``CHAMPION`` pointer, and tells Redis last
(:func:`trainfarm.shared.champions.announce.announce`); the steps and their order:
docs/ml.md#promotion-rollback-retention. A refused pack raises
:class:`~trainfarm.shared.errors.ArtifactError` before anything has changed.

A registry that dies during its transaction has rolled it back, or committed it if it died while
committing; nothing else has changed, and the error says to repeat. A failure after the commit leaves the
durable state right and says so: :class:`NotAnnouncedError` (transient) when Redis is unreachable, a
:class:`~trainfarm.shared.registry.RegistryUnavailableError` naming the new champion when the registry
went away right after its commit (the pointer reads the registry). Promoting the champion again is a
no-op in the registry that rewrites the pointer and re-announces idempotently, so repeating the command
(or the task) completes it; when the champion may have moved on since, :func:`reannounce` publishes
whatever the registry holds now. What the reliability suite proves of this:
docs/RELIABILITY.md#5-postgresql-unavailable-during-a-promotion.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path

import redis

from trainfarm.shared.atomicio import atomic_write_text
from trainfarm.shared.champions.announce import NotifyError, announce, iso_utc, record_event
from trainfarm.shared.connections import redis_connection
from trainfarm.shared.errors import ArtifactError, EmbeddedRedisError, RedisUnavailableError, TransientError
from trainfarm.shared.packs.artifacts import MANIFEST, read_manifest
from trainfarm.shared.registry import (
    NoChampionError,
    PromotionReason,
    PromotionRecord,
    ReasonLike,
    Registry,
    RegistryUnavailableError,
    RunRecord,
    VersionRecord,
)
from trainfarm.shared.settings import FarmSettings, get_settings
from trainfarm.shared.symbols import canonical_symbol
from trainfarm.shared.timeframes import Timeframe, parse_timeframe
from trainfarm_client.contract import FAILED, PROMOTED, REJECTED, ROLLBACK

#: Name of the pointer file beside a market's packs.
CHAMPION_FILE = "CHAMPION"


class NotAnnouncedError(TransientError):
    """The registry and the CHAMPION pointer name the new champion, but Redis could not be told.

    Handled by: Celery tasks (retry: the repeat is idempotent) and the CLI (prints what to run again).
    Bots keep serving the old version until the announcement gets through.
    """


@dataclass(frozen=True)
class PromotionResult:
    """What a promotion or rollback did, from the registry to Redis."""

    symbol: str
    timeframe: str
    version: str
    previous_version: str | None
    reason: str
    event: str
    promoted_at: datetime
    manifest_sha256: str
    pack_path: str
    changed: bool  #: False: the version was champion already (pointer and Redis were refreshed)
    announced: str  #: an AnnounceOutcome value

    def to_json(self) -> dict[str, object]:
        """JSON-safe dict (time as the same ISO string the champion key carries)."""
        return asdict(self) | {"promoted_at": iso_utc(self.promoted_at)}


@dataclass(frozen=True)
class GateSummary:
    """A gate report boiled down for listings: passed (None: never gated) and the failed checks' names."""

    passed: bool | None
    failed: tuple[str, ...]

    def describe(self) -> str:
        """``passed``, ``failed: a, b``, or empty when there is no report."""
        if self.passed is None:
            return ""
        if self.passed:
            return "passed"
        return "failed: " + ", ".join(self.failed) if self.failed else "failed"


@dataclass(frozen=True)
class PruneResult:
    """Versions retention marked pruned now, and packs whose folders it deleted (also earlier marks)."""

    symbol: str
    timeframe: str
    keep: int
    pruned: list[str]
    deleted: list[str]


def gate_summary(report: Mapping[str, object] | None) -> GateSummary:
    """Summarise a gate report: ``{"passed": bool, "checks": [{"name", "passed", ...}] or {name: {...}}}``.

    Tolerant of shape (the gates own it): a missing overall verdict is derived from the checks.
    """
    if report is None:
        return GateSummary(None, ())
    checks = report.get("checks", report)
    items: list[tuple[str, object]] = []
    if isinstance(checks, Mapping):
        items = [(str(name), check) for name, check in checks.items()]
    elif isinstance(checks, list):
        items = [(str(c.get("name", i)), c) for i, c in enumerate(checks) if isinstance(c, Mapping)]
    failed = tuple(name for name, c in items if isinstance(c, Mapping) and c.get("passed") is False)
    verdict = report.get("passed")
    if isinstance(verdict, bool):
        return GateSummary(verdict, failed)
    judged = any(isinstance(c, Mapping) and isinstance(c.get("passed"), bool) for _, c in items)
    return GateSummary(not failed if judged else None, failed)


def champion_pointer(root: Path, symbol: str, timeframe: str) -> Path:
    """The CHAMPION pointer file of a market: ``<root>/<S>/<T>/CHAMPION``."""
    return root / symbol / timeframe / CHAMPION_FILE


def read_pointer(root: Path, symbol: str, timeframe: str) -> str | None:
    """The version id the CHAMPION pointer names, or None when there is no pointer yet."""
    try:
        return champion_pointer(root, symbol, timeframe).read_text().strip() or None
    except FileNotFoundError:
        return None


def verify_pack(version: VersionRecord) -> dict[str, object]:
    """The pack's manifest, after checking every file and the manifest's registered sha256.

    Also refuses a manifest that names another version or market (a pack copied into the wrong folder).
    """
    manifest = read_manifest(Path(version.path), expected_sha256=version.manifest_sha256)
    expected = {"version": version.version, "symbol": version.symbol, "timeframe": version.timeframe}
    for key, value in expected.items():
        if key in manifest and manifest[key] != value:
            raise ArtifactError(f"{version.path}: manifest says {key} {manifest[key]!r}, registry {value!r}")
    return manifest


def promote_version(
    version_id: str,
    reason: ReasonLike = PromotionReason.MANUAL,
    gate_report: Mapping[str, object] | None = None,
    *,
    registry: Registry | None = None,
    client: redis.Redis | None = None,
    settings: FarmSettings | None = None,
) -> PromotionResult:
    """Verify, promote in the registry, move the CHAMPION pointer, announce on Redis (in that order).

    Raises :class:`ArtifactError` (pack fails verification; nothing changed), the registry's errors
    (unknown, pruned or rejected version; nothing changed) and :class:`NotAnnouncedError` (registry and
    pointer changed, Redis not told yet).
    """
    settings = settings or get_settings()
    registry = registry or Registry.open()
    version = registry.versions.get(version_id)
    verify_pack(version)
    with _unconfirmed(version_id, retry=f"farm promote {version_id}"):
        promotion = registry.champions.promote(version_id, reason=reason, gate_report=gate_report)
    return _publish(registry, settings, client, version, promotion, retry=f"farm promote {version_id}")


def rollback(
    symbol: str,
    timeframe: Timeframe | str,
    *,
    registry: Registry | None = None,
    client: redis.Redis | None = None,
    settings: FarmSettings | None = None,
) -> PromotionResult:
    """Make the previous champion the champion again (reason and event "rollback").

    Raises :class:`~trainfarm.shared.registry.NoChampionError` naming the market when there is nothing to roll
    back to, :class:`ArtifactError` when the previous champion's pack fails verification.
    """
    sym, tf = canonical_symbol(symbol), parse_timeframe(timeframe).value
    settings = settings or get_settings()
    registry = registry or Registry.open()
    previous = registry.champions.previous(sym, tf)
    if previous is None:
        current = registry.champions.get(sym, tf)
        detail = f"champion {current.version} was the first" if current else "there is no champion"
        raise NoChampionError(f"{sym} {tf} has no previous champion to roll back to ({detail})")
    verify_pack(previous)
    # to_version: if the champion moved while we verified, the registry refuses instead of rolling back
    # to a version nobody asked for.
    with _unconfirmed(previous.version, retry=f"farm promote {previous.version}"):
        promotion = registry.champions.rollback(sym, tf, to_version=previous.version)
    return _publish(registry, settings, client, previous, promotion, retry=f"farm promote {previous.version}")


def reannounce(
    symbol: str,
    timeframe: Timeframe | str,
    *,
    registry: Registry | None = None,
    client: redis.Redis | None = None,
    settings: FarmSettings | None = None,
) -> PromotionResult | None:
    """Rewrite the pointer and announce the registry's current champion (None if there is none).

    For a retry after :class:`NotAnnouncedError` when the champion may have changed since, and for
    restoring the Redis side after Redis lost its data; idempotent.
    """
    sym, tf = canonical_symbol(symbol), parse_timeframe(timeframe).value
    settings = settings or get_settings()
    registry = registry or Registry.open()
    champion = registry.champions.get(sym, tf)
    if champion is None:
        return None
    made = next((p for p in registry.champions.history(sym, tf) if p.to_version == champion.version), None)
    if made is None:  # a champion set outside promote(): promoting it records its promotion
        made = registry.champions.promote(champion.version, reason=PromotionReason.MANUAL)
    made = replace(made, new=False)  # nothing changed in the registry
    return _publish(registry, settings, client, champion, made, retry=f"farm promote {champion.version}")


def reject_version(
    version_id: str,
    gate_report: Mapping[str, object],
    *,
    registry: Registry | None = None,
    client: redis.Redis | None = None,
    settings: FarmSettings | None = None,
) -> VersionRecord:
    """Record the gates' rejection in the registry, then append a "rejected" event to the stream."""
    registry = registry or Registry.open()
    version = registry.champions.reject(version_id, gate_report)
    summary = gate_summary(version.gate_report)
    data = {
        "symbol": version.symbol,
        "timeframe": version.timeframe,
        "version": version.version,
        "run_id": version.run_id,
        "failed": list(summary.failed),
        "gate_report": version.gate_report,
    }
    with redis_after(settings or get_settings(), client, f"{version_id} is rejected in the registry") as conn:
        record_event(conn, REJECTED, data)
    return version


def record_failure(
    run: RunRecord, *, client: redis.Redis | None = None, settings: FarmSettings | None = None
) -> str:
    """Append a "failed" event for a run to the stream; returns the entry id."""
    data = {
        "run_id": run.id,
        "symbol": run.symbol,
        "timeframe": run.timeframe,
        "model": run.failed_model,
        "error": run.error,
    }
    with redis_after(settings or get_settings(), client, f"run {run.id} is failed in the registry") as conn:
        return record_event(conn, FAILED, data)


def prune(
    symbol: str,
    timeframe: Timeframe | str,
    *,
    keep: int | None = None,
    registry: Registry | None = None,
    settings: FarmSettings | None = None,
) -> PruneResult:
    """Delete the packs of versions beyond the newest ``keep`` (default: ``[retention] keep_versions``).

    The champion and the previous champion are never pruned. Versions are marked pruned in the registry
    first (under the market lock, so a concurrent promotion either wins and is kept, or sees the mark and
    refuses), then their folders are deleted; folders an interrupted earlier prune left are deleted too.
    """
    sym, tf = canonical_symbol(symbol), parse_timeframe(timeframe).value
    settings = settings or get_settings()
    registry = registry or Registry.open()
    keep = settings.load_config().retention.keep_versions if keep is None else keep
    marked = registry.champions.mark_pruned(sym, tf, keep)
    deleted: list[str] = []
    refused: list[str] = []
    for v in registry.versions.of_market(sym, tf):
        path = Path(v.path)
        if v.pruned_at is None or not path.exists():
            continue
        if _is_pack_of(path, v):
            _delete(path)
            deleted.append(v.version)
        else:
            refused.append(f"{path} ({v.version})")
    if refused:
        # Loud, but only after everything deletable is gone: one odd row must not stall retention.
        raise ArtifactError(f"{sym} {tf}: refusing to delete what is not a pack folder: {', '.join(refused)}")
    return PruneResult(sym, tf, keep, [v.version for v in marked], deleted)


def _is_pack_of(path: Path, version: VersionRecord) -> bool:
    # A registry path is data: delete only what is shaped like this version's pack (<S>/<T>/<version>
    # holding a manifest, not a link), never whatever a corrupted row points at.
    shaped = (path.name, path.parent.name, path.parent.parent.name) == (
        version.version,
        version.timeframe,
        version.symbol,
    )
    return shaped and not path.is_symlink() and (path / MANIFEST).is_file()


def _delete(path: Path) -> None:
    # Renamed first (atomic), then removed: nothing ever sees a half-deleted pack under its real name.
    doomed = path.with_name(f".pruning-{path.name}-{secrets.token_hex(4)}")
    path.rename(doomed)
    shutil.rmtree(doomed)


def _publish(
    registry: Registry,
    settings: FarmSettings,
    client: redis.Redis | None,
    version: VersionRecord,
    promotion: PromotionRecord,
    *,
    retry: str,
) -> PromotionResult:
    sym, tf = version.symbol, version.timeframe
    try:
        _write_pointer(registry, settings.artifacts_dir, sym, tf)
    except RegistryUnavailableError as exc:
        # The registry committed, then went away before the pointer could read it back (PostgreSQL died
        # right after the commit): say what is done and what to repeat, as for Redis below. Still transient.
        raise RegistryUnavailableError(
            f"{version.version} is the champion of {sym} {tf} in the registry, but the registry became "
            f"unreachable before the CHAMPION pointer and Redis were updated ({exc}); run `{retry}` again "
            "once it answers (idempotent)"
        ) from exc
    event = ROLLBACK if promotion.reason is PromotionReason.ROLLBACK else PROMOTED
    done = f"{version.version} is the champion of {sym} {tf} in the registry and the CHAMPION pointer"
    with redis_after(settings, client, done, retry=retry) as conn:
        outcome = announce(
            conn,
            symbol=sym,
            timeframe=tf,
            version=version.version,
            manifest_sha256=version.manifest_sha256,
            pack_path=version.path,
            event=event,
            previous_version=promotion.from_version,
            promoted_at=promotion.at,
            base_url=settings.pack_base_url,
            root=settings.artifacts_dir,
        )
    return PromotionResult(
        symbol=sym,
        timeframe=tf,
        version=version.version,
        previous_version=promotion.from_version,
        reason=promotion.reason.value,
        event=event,
        promoted_at=promotion.at,
        manifest_sha256=version.manifest_sha256,
        pack_path=version.path,
        changed=promotion.new,
        announced=outcome.value,
    )


def _write_pointer(registry: Registry, root: Path, symbol: str, timeframe: str) -> None:
    # Two promoters of one market commit in some order but may reach this point in the other: each
    # writes what the registry says *now*, under a file lock, so the last writer writes the last champion.
    pointer = champion_pointer(root, symbol, timeframe)
    pointer.parent.mkdir(parents=True, exist_ok=True)
    with _locked(pointer.with_name(f".{CHAMPION_FILE}.lock")):
        champion = registry.champions.get(symbol, timeframe)
        if champion is not None:
            atomic_write_text(pointer, champion.version + "\n")


@contextmanager
def _unconfirmed(version_id: str, *, retry: str) -> Iterator[None]:
    # The registry's connection died during its transaction: rolled back, or committed if it died while
    # committing (the answer to COMMIT lost); nobody here can tell which. Pointer and Redis are untouched
    # either way, and repeating is idempotent, so say that instead of only the driver's error.
    try:
        yield
    except RegistryUnavailableError as exc:
        raise RegistryUnavailableError(
            f"the registry did not confirm that {version_id} is the champion ({exc}); it may or may not hold "
            f"it, the CHAMPION pointer and Redis are unchanged; run `{retry}` again once it answers "
            "(idempotent)"
        ) from exc


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


@contextmanager
def redis_after(
    settings: FarmSettings, client: redis.Redis | None, done: str, *, retry: str | None = None
) -> Iterator[redis.Redis]:
    """A Redis connection for the writes that follow durable ones (``done`` says what is durable): a
    failure becomes :class:`NotAnnouncedError` (unreachable) or :class:`NotifyError` (refused) saying what
    is done and, with ``retry``, what to run again."""
    again = f"; run `{retry}` again to announce it (idempotent)" if retry else ""
    try:
        with redis_connection(settings, client=client) as conn:
            yield conn
    except RedisUnavailableError as exc:
        raise NotAnnouncedError(f"{done}, but Redis was not told: {exc}{again}") from exc
    except (NotifyError, EmbeddedRedisError) as exc:
        raise NotifyError(f"{done}, but Redis was not told: {exc}{again}") from exc
