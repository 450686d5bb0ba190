"""How the registry reaches its database: engines set up for concurrent writers, one per URL per process.

:func:`create_registry_engine` gives every SQLite connection WAL mode (readers never block the writer), a
busy timeout and foreign keys, and starts write transactions with ``BEGIN IMMEDIATE``: taking the write
lock up front makes a second writer wait for the first, instead of failing with "database is locked" when
its read would have to become a write. Several worker processes write at once, so this matters.
:func:`shared_engine` creates it once per process and migrates the database to head
(:mod:`trainfarm.shared.registry.migrations`).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from sqlalchemy import URL, Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.pool import Pool, StaticPool

from trainfarm.shared.errors import ConfigError
from trainfarm.shared.registry.migrations import migrate

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
    "SQLITE_BEGIN",
    "create_registry_engine",
    "dispose_engine",
    "shared_engine",
]
