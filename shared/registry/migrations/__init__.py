"""How the registry reaches its database: engines set up for concurrent writers, and schema migrations.

:func:`create_registry_engine` gives every SQLite connection WAL mode (readers never block the writer), a
busy timeout and foreign keys, and starts write transactions with ``BEGIN IMMEDIATE``: taking the write
lock up front makes a second writer wait for the first, instead of failing with "database is locked" when
its read would have to become a write. Several worker processes write at once, so this matters.

:func:`migrate` brings a database to the newest Alembic revision, configured in code (no ``alembic.ini``
at run time). Workers, beat and the CLI may start at once against a fresh database, so the upgrade runs in
one transaction that takes a lock first: ``BEGIN IMMEDIATE`` on SQLite, a transaction-level advisory lock
on PostgreSQL. The second process waits, then finds the schema at head and does nothing.

Writing a new revision: ``alembic -c <ini with script_location = shared/registry/migrations and
sqlalchemy.url> revision -m "..."``, then write the operations out by hand.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url, text
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import Pool, StaticPool

from trainfarm.shared.errors import ConfigError

MIGRATIONS_DIR = Path(__file__).resolve().parent

#: Key of the PostgreSQL advisory lock that serialises migrations ("trainfarm" as a 63-bit number).
_PG_LOCK_KEY = int.from_bytes(b"tfarmreg", "big") >> 1

#: How long a SQLite writer waits for another writer's lock before giving up.
BUSY_TIMEOUT_S = 30.0
#: Execution option naming how a SQLite transaction begins; reads begin DEFERRED so they never queue.
SQLITE_BEGIN = "trainfarm_sqlite_begin"


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Python's sqlite3 would issue its own deferred BEGIN; turn that off and begin in _sqlite_on_begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        _ensure_wal(cursor)
        cursor.execute("PRAGMA foreign_keys = ON")
    finally:
        cursor.close()


def _ensure_wal(cursor: Any) -> None:
    # WAL is a property of the file, set once. Switching needs an exclusive lock, and SQLite answers
    # "database is locked" at once, without waiting the busy timeout, when another connection to a fresh
    # file switches (or migrates) at the same moment; so wait here, then find the file in WAL mode.
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() not in ("wal", "memory"):
                cursor.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            # "database is locked" is SQLITE_BUSY (by its error code, not its message text).
            busy = getattr(exc, "sqlite_errorcode", None) in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
            if not busy or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _sqlite_on_begin(connection: Connection) -> None:
    mode = connection.get_execution_options().get(SQLITE_BEGIN, "IMMEDIATE")
    connection.exec_driver_sql(f"BEGIN {mode}")


def create_registry_engine(url: str | URL, *, poolclass: type[Pool] | None = None) -> Engine:
    """An engine for ``url`` set up for the registry (SQLite: parent folder, WAL, busy timeout, locking)."""
    try:
        parsed = make_url(url)
        if parsed.get_backend_name() != "sqlite":
            return create_engine(parsed, pool_pre_ping=True, poolclass=poolclass)
        database = parsed.database or ""
        in_memory = database in ("", ":memory:") or parsed.query.get("mode") == "memory"
        if not in_memory and not database.startswith("file:"):
            Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
        options: dict[str, Any] = {"connect_args": {"timeout": BUSY_TIMEOUT_S}}
        if in_memory:  # one shared connection, or every connection would see its own empty database
            options = {"connect_args": {"check_same_thread": False}, "poolclass": StaticPool}
        elif poolclass is not None:
            options["poolclass"] = poolclass
        engine = create_engine(parsed, **options)
    except (ArgumentError, NoSuchModuleError) as exc:
        raise ConfigError(f"invalid registry database URL: {exc}") from None
    event.listen(engine, "connect", _sqlite_on_connect)
    event.listen(engine, "begin", _sqlite_on_begin)
    return engine


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic config pointing at this package; ``connection`` (if given) is the one env.py uses."""
    cfg = Config()
    # ConfigParser interpolates '%': escape it in case the install path contains one.
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    cfg.set_main_option("path_separator", "os")
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision id shipped with this code."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships 0001
        raise RuntimeError(f"no Alembic revisions under {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine) -> str | None:
    """The revision the database behind ``engine`` is at (None for an empty database)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def migrate(engine: Engine) -> None:
    """Upgrade the database behind ``engine`` to head, serialised against other processes doing the same."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Released at commit; the DDL below is transactional on PostgreSQL, so waiters see all or none.
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
        command.upgrade(alembic_config(connection), "head")


# One engine per URL per process: tasks call Registry.open() per task, and each engine holds a pool.
_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


def _after_fork_in_child() -> None:
    # A forked worker must not reuse the parent's pooled connections (two processes on one socket).
    global _engines_lock  # noqa: PLW0603 - the parent's lock may have been held at fork time
    _engines_lock = threading.Lock()
    for engine in _engines.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_after_fork_in_child)


def shared_engine(url: str) -> Engine:
    """This process's engine for ``url``, migrated to head when first created (raises SQLAlchemy errors)."""
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            engine = create_registry_engine(url)
            try:
                migrate(engine)
            except BaseException:
                engine.dispose()
                raise
            _engines[url] = engine
        return engine


def dispose_engine(url: str) -> None:
    """Close and forget this process's shared engine for ``url`` (before dropping a database, in tests)."""
    with _engines_lock:
        engine = _engines.pop(url, None)
    if engine is not None:
        engine.dispose()


__all__ = [
    "BUSY_TIMEOUT_S",
    "MIGRATIONS_DIR",
    "SQLITE_BEGIN",
    "alembic_config",
    "create_registry_engine",
    "current_revision",
    "dispose_engine",
    "head_revision",
    "migrate",
    "shared_engine",
]
