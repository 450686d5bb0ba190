"""The registry's unit of work: one engine, its clock, and the short transactions every store runs on it.

:meth:`Database.write` begins a transaction that takes SQLite's write lock up front (``BEGIN IMMEDIATE``,
see :mod:`trainfarm.shared.registry.engine`); :meth:`Database.read` begins a deferred one, so a read never
queues behind a writer. Errors of the database come out as :class:`RegistryUnavailableError` (passing: lock
contention, PostgreSQL down) or :class:`RegistryError` (a fault that retrying will not heal).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime

from sqlalchemy import URL, Engine, make_url
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from trainfarm.shared.errors import FarmError, RegistryError, RegistryUnavailableError
from trainfarm.shared.registry.engine import SQLITE_BEGIN, create_registry_engine, shared_engine
from trainfarm.shared.registry.migrations import migrate


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


def open_engine(url: str) -> Engine:
    """This process's engine for ``url``, migrated to head once per process (raises registry errors)."""
    try:
        return shared_engine(url)
    except OperationalError as exc:
        raise _unavailable(make_url(url), exc) from exc


class Database:
    """An engine whose database is migrated already, and the transactions the registry's stores run on it.

    Each ``with`` block is one transaction: committed when the block ends, rolled back when it raises. Its
    session gives ORM rows that stay readable after the block (``expire_on_commit=False``).
    """

    def __init__(self, engine: Engine, *, clock: Callable[[], datetime] = utc_now) -> None:
        self.engine = engine
        self.clock = clock
        self._writer = sessionmaker(engine, expire_on_commit=False)
        self._reader = sessionmaker(
            engine.execution_options(**{SQLITE_BEGIN: "DEFERRED"}), expire_on_commit=False
        )

    def now(self) -> datetime:
        """The time to record (the clock given, UTC by default)."""
        return self.clock()

    def write(self) -> AbstractContextManager[Session]:
        """A transaction that may write (SQLite: ``BEGIN IMMEDIATE``, waiting for another writer first)."""
        return self._transaction(self._writer)

    def read(self) -> AbstractContextManager[Session]:
        """A transaction that only reads (SQLite: ``BEGIN DEFERRED``, never waiting for a writer)."""
        return self._transaction(self._reader)

    @contextmanager
    def _transaction(self, maker: sessionmaker[Session]) -> Iterator[Session]:
        try:
            with maker() as session, session.begin():
                yield session
        except OperationalError as exc:
            raise _unavailable(self.engine.url, exc) from exc

    def close(self) -> None:
        """Close the engine's idle connections (it stays usable; new connections open on demand)."""
        self.engine.dispose()


__all__ = ["Database", "open_engine", "upgrade", "utc_now"]
