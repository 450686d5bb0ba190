"""One active run per market, enforced by the database (migration 0003), on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import inspect, text
from sqlalchemy.pool import NullPool

from tests.support.concurrency import in_threads, on_own_engine
from trainfarm.shared.registry import ActiveRunExistsError, Registry, RunKind, create_registry_engine, upgrade
from trainfarm.shared.registry.migrations import alembic_config


def test_a_second_active_run_of_a_market_is_refused_naming_the_first(registry: Registry) -> None:
    first = registry.runs.create("BTC_USDT", "1h", "forced")
    with pytest.raises(ActiveRunExistsError, match=first.id) as info:
        registry.runs.create("BTC/USDT", "1h", "scheduled")
    assert info.value.run_id == first.id
    # Other markets are independent; an ended run frees its market.
    other = registry.runs.create("BTC_USDT", "24h", "forced")
    assert [r.id for r in registry.runs.all_active()] == [first.id, other.id]  # oldest first
    assert [r.id for r in registry.runs.all_active(timeframe="1d")] == [other.id]
    registry.runs.fail(first.id, "ended")
    assert [r.id for r in registry.runs.all_active("BTC/USDT")] == [other.id]
    assert registry.runs.create("BTC_USDT", "1h", "scheduled").id != first.id


def test_claim_returns_the_active_run_until_it_ends(registry: Registry) -> None:
    run, created = registry.runs.claim("ETH_USDT", "12h", "forced")
    assert created and registry.runs.active("ETH_USDT", "12h") == run
    again, created_again = registry.runs.claim("eth/usdt", "12h", "scheduled")
    assert not created_again and again.id == run.id
    registry.runs.set_status(run.id, "training")
    merged = registry.runs.claim("ETH_USDT", "12h", "trigger")[0]
    assert merged.id == run.id
    # Every caller's reason is kept, in order, once each.
    assert merged.reasons == ["forced", "scheduled", "trigger"]
    assert registry.runs.claim("ETH_USDT", "12h", "scheduled")[0].reasons == [
        "forced",
        "scheduled",
        "trigger",
    ]
    assert registry.runs.get(run.id).reasons == ["forced", "scheduled", "trigger"]
    registry.runs.fail(run.id, "ended")
    assert registry.runs.active("ETH_USDT", "12h") is None
    fresh, created_fresh = registry.runs.claim("ETH_USDT", "12h", "after")
    assert created_fresh and fresh.id != run.id


def test_concurrent_claimers_with_their_own_engines_get_one_run(db_url: str) -> None:
    upgrade(db_url)
    claims = in_threads(8, lambda i: on_own_engine(db_url, lambda r: r.runs.claim("SOL_USDT", "1h", f"t{i}")))
    assert len({run.id for run, _ in claims}) == 1
    assert sorted(created for _, created in claims) == [False] * 7 + [True]
    runs = Registry.open(db_url).runs.newest("SOL_USDT", "1h")
    assert len(runs) == 1
    assert sorted(runs[0].reasons) == sorted(f"t{i}" for i in range(8))  # no merger's reason lost


def test_migration_0003_fails_all_but_the_newest_active_run_of_a_market(db_url: str) -> None:
    """A registry from before 0003 may hold stuck duplicates: the upgrade keeps only the newest active."""
    upgrade(db_url)
    engine = create_registry_engine(db_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0002")
        rows = [
            ("old", "queued", datetime(2026, 1, 1, tzinfo=UTC)),
            ("newer", "training", datetime(2026, 1, 2, tzinfo=UTC)),
            ("done", "failed", datetime(2026, 1, 3, tzinfo=UTC)),
        ]
        with engine.begin() as conn:
            for rid, status, created in rows:
                naive = created.replace(tzinfo=None) if engine.dialect.name == "sqlite" else created
                conn.execute(
                    text(
                        "INSERT INTO runs (id, symbol, timeframe, reason, status, created_at) "
                        "VALUES (:id, 'BTC_USDT', '1h', 'test', :status, :created)"
                    ),
                    {"id": rid, "status": status, "created": naive},
                )
        upgrade(db_url)
        registry = Registry.open(db_url)
        old = registry.runs.get("old")
        assert old.status == "failed" and old.error is not None and "superseded" in old.error
        assert registry.runs.get("newer").status == "training"
        assert registry.runs.get("done").error is None  # an ended run is left as it was
        unique = {i["name"] for i in inspect(engine).get_indexes("runs") if i["unique"]}
        assert "uq_runs_one_active" in unique
    finally:
        engine.dispose()


def test_migration_0004_folds_duplicate_outcomes_keeping_a_realised_return(db_url: str) -> None:
    """Outcomes stored twice before 0004 become one row, with the realised return one of them had."""
    upgrade(db_url)
    engine = create_registry_engine(db_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0003")
        at = datetime(2026, 1, 1, 10, tzinfo=UTC)
        naive = at.replace(tzinfo=None) if engine.dialect.name == "sqlite" else at
        with engine.begin() as conn:
            for realised in (None, 0.02, None):
                conn.execute(
                    text(
                        "INSERT INTO live_outcomes (bot_id, symbol, timeframe, version, at, signal,"
                        " probability, realised_return)"
                        " VALUES ('b', 'BTC_USDT', '1h', 'v1', :at, 'up', 0.6, :r)"
                    ),
                    {"at": naive, "r": realised},
                )
        upgrade(db_url)
        registry = Registry.open(db_url)
        assert registry.outcomes.realised_returns("BTC_USDT", "1h", "v1") == [0.02]
        with engine.begin() as conn:
            assert conn.execute(text("SELECT COUNT(*) FROM live_outcomes")).scalar() == 1
        unique = {i["name"] for i in inspect(engine).get_indexes("live_outcomes") if i["unique"]}
        assert "uq_live_outcomes_signal" in unique
    finally:
        engine.dispose()


def test_migration_0005_gives_existing_runs_the_full_kind_and_keeps_the_one_active_index(db_url: str) -> None:
    """Runs from before 0005 were full runs; the partial unique index on active runs survives the column."""
    upgrade(db_url)
    engine = create_registry_engine(db_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0004")
        created = datetime(2026, 1, 1, tzinfo=UTC)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO runs (id, symbol, timeframe, reason, status, created_at) "
                    "VALUES ('before', 'BTC_USDT', '1h', 'test', 'queued', :created)"
                ),
                {"created": created.replace(tzinfo=None) if engine.dialect.name == "sqlite" else created},
            )
        upgrade(db_url)
        registry = Registry.open(db_url)
        assert registry.runs.get("before").kind == RunKind.FULL
        with pytest.raises(ActiveRunExistsError, match="before"):
            registry.runs.create("BTC_USDT", "1h", "meta:schedule", kind=RunKind.META)
        meta = registry.runs.create("BTC_USDT", "12h", "meta:schedule", kind=RunKind.META)
        assert registry.runs.get(meta.id).kind == RunKind.META
    finally:
        engine.dispose()
