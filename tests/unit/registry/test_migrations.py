"""The Alembic migrations: fresh and repeated upgrades, concurrent upgrades, schema == ORM metadata."""

from __future__ import annotations

import io
import multiprocessing
import os
import threading
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Integer, MetaData, create_engine, inspect, text
from sqlalchemy.pool import NullPool

from trainfarm.shared.registry import Registry, create_registry_engine, upgrade
from trainfarm.shared.registry.migrations import (
    MIGRATIONS_DIR,
    alembic_config,
    current_revision,
    head_revision,
)
from trainfarm.shared.registry.models import Base

TABLES = {"runs", "base_results", "versions", "promotions", "live_outcomes", "replays", "replay_points"}


def schema_diffs(url: str, metadata: MetaData = Base.metadata) -> list[object]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return list(compare_metadata(context, metadata))
    finally:
        engine.dispose()


def test_the_package_ships_one_linear_history_and_its_template() -> None:
    scripts = ScriptDirectory.from_config(alembic_config())
    history = ["0008", "0007", "0006", "0005", "0004", "0003", "0002", "0001"]
    assert [s.revision for s in scripts.walk_revisions()] == history
    assert head_revision() == "0008"
    assert (MIGRATIONS_DIR / "script.py.mako").is_file()


def test_fresh_upgrade_creates_every_table(db_url: str) -> None:
    engine = create_registry_engine(db_url, poolclass=NullPool)
    try:
        assert current_revision(engine) is None
        upgrade(db_url)
        assert current_revision(engine) == head_revision()
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()


def test_second_upgrade_changes_nothing_and_keeps_data(db_url: str) -> None:
    upgrade(db_url)
    run = Registry.open(db_url).runs.create("BTC/USDT", "1h", "forced")
    upgrade(db_url)
    assert Registry.open(db_url).runs.get(run.id).reason == "forced"
    assert schema_diffs(db_url) == []


def test_migrated_schema_matches_the_orm_metadata(db_url: str) -> None:
    upgrade(db_url)
    assert schema_diffs(db_url) == []


def test_the_comparison_would_notice_a_drift(db_url: str) -> None:
    # Guards the test above: a column the migrations do not create must show up as a difference.
    upgrade(db_url)
    drifted = MetaData(naming_convention=Base.metadata.naming_convention)
    for table in Base.metadata.sorted_tables:
        table.to_metadata(drifted)
    drifted.tables["runs"].append_column(Column("priority", Integer))
    assert any(d[0] == "add_column" for d in schema_diffs(db_url, drifted) if isinstance(d, tuple))


def test_concurrent_upgrades_of_a_fresh_database_all_succeed(db_url: str) -> None:
    # Workers, beat and the CLI may all start at once against an empty database.
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def migrate() -> None:
        try:
            barrier.wait()
            upgrade(db_url)
        except BaseException as exc:  # collected and asserted on in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=migrate) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert errors == []
    assert schema_diffs(db_url) == []


def test_downgrade_to_base_and_back(db_url: str) -> None:
    upgrade(db_url)
    engine = create_registry_engine(db_url, poolclass=NullPool)
    try:
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "base")
        assert TABLES.isdisjoint(inspect(engine).get_table_names())
        upgrade(db_url)
        assert current_revision(engine) == head_revision()
    finally:
        engine.dispose()


def test_0002_adds_pruned_at_and_its_downgrade_keeps_the_one_champion_index(db_url: str) -> None:
    upgrade(db_url)
    engine = create_registry_engine(db_url, poolclass=NullPool)
    try:
        assert "pruned_at" in {c["name"] for c in inspect(engine).get_columns("versions")}
        with engine.begin() as conn:
            command.downgrade(alembic_config(conn), "0001")
        inspector = inspect(engine)
        assert "pruned_at" not in {c["name"] for c in inspector.get_columns("versions")}
        unique = {i["name"] for i in inspector.get_indexes("versions") if i["unique"]}
        assert "uq_versions_one_champion" in unique
        upgrade(db_url)
        assert schema_diffs(db_url) == []
    finally:
        engine.dispose()


def test_offline_mode_writes_the_sql() -> None:
    cfg = alembic_config()
    cfg.set_main_option("sqlalchemy.url", "postgresql+psycopg://nobody@localhost/none")
    cfg.output_buffer = io.StringIO()
    command.upgrade(cfg, "head", sql=True)
    sql = cfg.output_buffer.getvalue()
    assert "CREATE TABLE runs" in sql and "CREATE UNIQUE INDEX uq_versions_one_champion" in sql


def test_open_creates_the_sqlite_folder_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a' / 'b' / 'registry.sqlite3'}"
    registry = Registry.open(url)
    assert (tmp_path / "a" / "b" / "registry.sqlite3").is_file()
    with registry.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30000
    registry.close()


def test_open_defaults_to_the_settings_database(farm_home: Path) -> None:
    registry = Registry.open()
    assert (farm_home / "registry.sqlite3").is_file()
    assert registry.runs.newest() == []


def test_an_in_memory_database_is_one_database() -> None:
    registry = Registry.open("sqlite://")
    run = registry.runs.create("ETH/USDT", "24h", "forced")
    assert registry.runs.get(run.id).symbol == "ETH_USDT"


@pytest.mark.parametrize("url", ["nosuchdriver://x", "postgresql+nosuchdbapi://u@h/d"])
def test_a_bad_url_is_a_config_error(url: str) -> None:
    from trainfarm.shared.errors import ConfigError

    with pytest.raises(ConfigError, match="invalid registry database URL"):
        Registry.open(url)


def test_an_unreachable_postgres_is_transient() -> None:
    from trainfarm.shared.errors import TransientError

    # Port 1 on localhost refuses at once; the error must say which database, without the password.
    with pytest.raises(TransientError, match=r"postgresql\+psycopg://u:\*\*\*@127\.0\.0\.1:1/d"):
        Registry.open("postgresql+psycopg://u:secret@127.0.0.1:1/d")


def test_sqlite_file_is_usable_by_plain_sqlalchemy_after_migration(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    upgrade(url)
    engine = create_engine(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()
    engine.dispose()


SHARED_RUN = "shared" + "0" * 26


def _worker(url: str, index: int) -> list[str]:
    """A freshly started worker process: open (and race to migrate) the registry, then write at once."""
    registry = Registry.open(url)
    registry.runs.create("BTC_USDT", "1h", "shared", run_id=SHARED_RUN)  # every process creates it
    # One market per process: a market has at most one active run.
    rid = registry.runs.create(f"P{index}_USDT", "1h", f"process {index}").id
    registry.runs.set_status(rid, "training")
    for model in ("m0", "m1", "m2"):
        registry.runs.base_started(rid, model, "family", "cpu", f"w{index}")
        registry.runs.base_finished(rid, model, seconds=1.0, metrics={"index": index})
        registry.runs.base_finished(SHARED_RUN, model, seconds=1.0, metrics={"index": index})
    return [r.model for r in registry.runs.base_results(rid)]


@pytest.mark.slow  # starts four worker processes, each a fresh interpreter
def test_worker_processes_open_a_fresh_database_and_write_at_once(db_url: str) -> None:
    with ProcessPoolExecutor(4, mp_context=multiprocessing.get_context("spawn")) as pool:
        results = list(pool.map(_worker, [db_url] * 6, range(6)))
    assert results == [["m0", "m1", "m2"]] * 6
    registry = Registry.open(db_url)
    assert len(registry.runs.newest()) == 7
    assert [r.status for r in registry.runs.base_results(SHARED_RUN)] == ["succeeded"] * 3


def test_a_forked_child_gets_its_own_connections(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fork.sqlite3'}"
    registry = Registry.open(url)
    rid = registry.runs.create("BTC_USDT", "1h", "parent").id  # leaves a pooled connection behind
    parent_pool = registry.engine.pool
    pid = os.fork()
    if pid == 0:  # the child: a new pool (no inherited connection), and it must work
        code = 1
        try:
            code = 0 if registry.engine.pool is not parent_pool and registry.runs.fail(rid, "child") else 1
        finally:
            os._exit(code)  # never return into pytest from the child
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert registry.runs.get(rid).error == "child"
