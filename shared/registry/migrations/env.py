"""Alembic environment of the registry.

At run time the farm hands Alembic an open connection (``config.attributes["connection"]``, see
:func:`trainfarm.shared.registry.migrations.migrate`), already inside the locked transaction. Run from the
``alembic`` command line instead, it connects to ``sqlalchemy.url`` from the ini file itself, or writes SQL
in offline mode (``--sql``).
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, pool

from trainfarm.shared.registry.engine import create_registry_engine
from trainfarm.shared.registry.models import Base

config = context.config
target_metadata = Base.metadata


def _configure_and_run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode (copy the table) lets autogenerate's output run there.
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_offline() -> None:
    """Write the migration SQL for ``sqlalchemy.url``'s dialect instead of running it."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Run the migrations on the connection the farm passed in, or on a fresh one to ``sqlalchemy.url``."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure_and_run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("set sqlalchemy.url in the Alembic ini file, or pass a connection")
    engine = create_registry_engine(url, poolclass=pool.NullPool)
    try:
        with engine.begin() as conn:
            _configure_and_run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
