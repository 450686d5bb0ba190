"""Workers on several machines: two workers with their own home folders share only what the settings name.

Each worker has its own ``FARM_HOME`` (as two hosts would: their own logs, caches, config copy) and reaches
the farm through the settings alone: the same Redis (the machine's, over TCP), the same PostgreSQL
registry, the same artifact root and bar store. A fan-out of the universe completes, and the base models
of its runs were trained by both workers (each took part of the chord).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.support.services import postgres_database, require_system_redis, system_redis_url
from tests.support.waiting import wait_until
from trainfarm.cli.processes import WorkerProcess
from trainfarm.shared.data.store import open_store
from trainfarm.shared.registry import Registry
from trainfarm.shared.settings import get_settings
from trainfarm.workers.celery_app import rebind

pytestmark = pytest.mark.integration

CONFIG = """
[universe]
symbols = ["BTC_USDT", "ETH_USDT"]
timeframes = ["12h"]
[training]
base_rounds = 12
meta_rounds = 40
early_stopping_rounds = 5
task_time_limit = "5m"
"""
RUN_TIMEOUT_S = 420.0


@pytest.fixture
def shared_services() -> Iterator[tuple[str, str]]:
    require_system_redis()
    url = system_redis_url("multi_host")
    redis.Redis.from_url(url).flushdb()
    try:
        for database in postgres_database():
            yield url, database
    finally:
        redis.Redis.from_url(url).flushdb()


def test_two_workers_in_two_homes_share_a_fan_out(
    shared_services: tuple[str, str], tmp_path: Path, sample_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from trainfarm.workers.tasks import fan_out

    redis_url, database = shared_services
    shared = {
        "FARM_REDIS_URL": redis_url,
        "FARM_DATABASE_URL": database,
        "FARM_ARTIFACT_ROOT": str(tmp_path / "nfs" / "artifacts"),  # the mount every host shares
        "FARM_DATA_ROOT": str(tmp_path / "nfs" / "bars"),
    }
    base = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    homes = []
    for host in ("host-a", "host-b", "control"):
        home = tmp_path / host / "farm"
        home.mkdir(parents=True)
        (home / "farm.toml").write_text(CONFIG)  # each host its own copy of the one config
        homes.append(home)
    # This test process is a third machine: it imports the bars and enqueues the fan-out.
    for key in list(os.environ):
        if key.startswith("FARM_"):
            monkeypatch.delenv(key)
    for key, value in shared.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("FARM_HOME", str(homes[2]))
    monkeypatch.setenv("FARM_CONFIG_FILE", str(homes[2] / "farm.toml"))
    get_settings.cache_clear()
    rebind()
    store = open_store()
    for symbol in ("BTC_USDT", "ETH_USDT"):
        store.import_file(sample_dir / f"{symbol}-5m.parquet", symbol)

    workers = [
        WorkerProcess(
            f"w{i}",
            base | shared | {"FARM_HOME": str(home), "FARM_CONFIG_FILE": str(home / "farm.toml")},
            home / "logs",
            concurrency=2,
        )
        for i, home in enumerate(homes[:2])
    ]
    try:
        for worker in workers:
            worker.start()
        submitted = fan_out("12h", "two hosts")
        assert len(submitted) == 2 and not any(s.merged for s in submitted)
        registry = Registry.open(database)
        wait_until(
            lambda: all(registry.runs.get(s.run_id).status.terminal for s in submitted),
            RUN_TIMEOUT_S,
            "the fan-out",
            process=workers[0],
            every=0.25,
        )
        for s in submitted:
            run = registry.runs.get(s.run_id)
            assert run.status == "succeeded", (run.error, workers[0].log()[-3000:], workers[1].log()[-3000:])
        trained_by = {r.worker.split("@")[0] for s in submitted for r in registry.runs.base_results(s.run_id)}
        assert trained_by == {"w0", "w1"}, trained_by  # each worker took part of the chords
        # Everything lives where the settings say, on the shared mount; the homes hold only their own logs.
        for s in submitted:
            version = registry.versions.get(str(registry.runs.get(s.run_id).version))
            assert Path(version.path).is_relative_to(tmp_path / "nfs" / "artifacts")
        for home in homes[:2]:
            assert not (home / "artifacts").exists() and not (home / "registry.sqlite3").exists()
    finally:
        for worker in workers:
            worker.stop()
        get_settings.cache_clear()
        shutil.rmtree(tmp_path / "nfs", ignore_errors=True)
