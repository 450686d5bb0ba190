"""Schema migrations of the registry (Alembic), configured in code: no ``alembic.ini`` at run time.

:func:`migrate` brings a database to the newest revision. Workers, beat and the CLI may start at once against
a fresh database, so the upgrade runs in one transaction that takes a lock first: ``BEGIN IMMEDIATE`` on
SQLite (see :mod:`trainfarm.shared.registry.engine`), a transaction-level advisory lock on PostgreSQL. The
second process waits, then finds the schema at head and does nothing.

Writing a new revision: ``alembic -c <ini with script_location = shared/registry/migrations and
sqlalchemy.url> revision -m "..."``, then write the operations out by hand.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

MIGRATIONS_DIR = Path(__file__).resolve().parent

#: Key of the PostgreSQL advisory lock that serialises migrations ("trainfarm" as a 63-bit number).
_PG_LOCK_KEY = int.from_bytes(b"tfarmreg", "big") >> 1


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


__all__ = ["MIGRATIONS_DIR", "alembic_config", "current_revision", "head_revision", "migrate"]
