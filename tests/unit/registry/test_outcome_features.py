"""Live outcomes carry the bots' feature values (migration 0006), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from alembic import command
from sqlalchemy import bindparam, inspect, text
from sqlalchemy.pool import NullPool

from trainfarm.shared.registry import Registry, Signal, create_registry_engine, upgrade
from trainfarm.shared.registry.migrations import alembic_config
from trainfarm.shared.registry.models import UTCDateTime

AT = datetime(2026, 1, 1, 10, tzinfo=UTC)


def test_migration_0006_adds_a_nullable_features_column_keeping_older_outcomes(db_url: str) -> None:
    upgrade(db_url)
    engine = create_registry_engine(db_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0005")
        assert "features" not in {c["name"] for c in inspect(engine).get_columns("live_outcomes")}
        with engine.begin() as conn:  # an outcome stored before bots reported features
            conn.execute(
                text(
                    "INSERT INTO live_outcomes (bot_id, symbol, timeframe, version, at, signal, probability,"
                    " realised_return) VALUES ('b', 'BTC_USDT', '1h', 'v1', :at, 'up', 0.6, 0.02)"
                ).bindparams(bindparam("at", type_=UTCDateTime())),  # stored as the registry stores times
                {"at": AT},
            )
        upgrade(db_url)
        columns = {c["name"]: c for c in inspect(engine).get_columns("live_outcomes")}
        assert columns["features"]["nullable"]
        registry = Registry.open(db_url)
        assert registry.outcomes.realised_returns("BTC_USDT", "1h", "v1") == [0.02]
        assert registry.outcomes.live_features("BTC_USDT", "1h", "v1", limit=5) == []
        # The older row gets its features from a later report; a new one stores them at once.
        counts = registry.outcomes.record(
            [
                Signal("b", "BTC_USDT", "1h", "v1", AT, "up", 0.6, 0.02, features=(0.25, -1e-9)),
                Signal("b", "BTC_USDT", "1h", "v1", AT + timedelta(hours=1), "up", 0.6, features=(1.0, 2.0)),
            ]
        )
        assert (counts.inserted, counts.updated) == (1, 1)
        assert registry.outcomes.live_features("BTC_USDT", "1h", "v1", limit=5) == [
            (AT, (0.25, -1e-9)),
            (AT + timedelta(hours=1), (1.0, 2.0)),
        ]
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0005")
        assert "features" not in {c["name"] for c in inspect(engine).get_columns("live_outcomes")}
        upgrade(db_url)
    finally:
        engine.dispose()
