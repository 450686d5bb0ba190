"""A farm home with real worker processes on a real Redis: what the integration tests build on.

A plain helper module (not a test module, not a conftest): conftest fixtures and tests import from it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests.support.services import require_system_redis, system_redis_url
from tests.support.waiting import wait_until
from trainfarm.cli.processes import WorkerProcess
from trainfarm.shared.connections import embedded_redis
from trainfarm.shared.data.store import open_store
from trainfarm.shared.registry import Registry, VersionRecord, VersionStatus
from trainfarm.shared.settings import get_settings
from trainfarm.workers.celery_app import rebind

RUN_TIMEOUT_S = 300.0
SYMBOL, TF = "BTC_USDT", "12h"

#: Small models: the integration tests check the plumbing, not the model quality.
TEST_CONFIG = """
[universe]
symbols = ["BTC_USDT"]
timeframes = ["12h"]
[training]
base_rounds = 12
meta_rounds = 40
early_stopping_rounds = 5
task_time_limit = "{time_limit}"
{extra}
"""


@dataclass
class Farm:
    """A farm home, its environment, and the worker processes serving it."""

    home: Path
    env: dict[str, str]
    workers: list[WorkerProcess]

    def registry(self) -> Registry:
        return Registry.open()

    def wait_run(self, run_id: str, timeout: float = RUN_TIMEOUT_S) -> str:
        reg = self.registry()
        wait_until(
            lambda: reg.runs.get(run_id).status in ("succeeded", "failed"),
            timeout,
            f"run {run_id}",
            process=self.workers[0],
            every=0.25,
        )
        return reg.runs.get(run_id).status

    def wait_settled(self, run_id: str, timeout: float = 60) -> VersionRecord:
        """The succeeded run's version once the gates' verdict was acted on (no longer a candidate).

        A run is recorded as succeeded together with its version, which is settled (promoted or
        rejected) just after, so a test that reads the verdict waits for it.
        """
        reg = self.registry()
        version = reg.runs.get(run_id).version
        assert version is not None, f"run {run_id} has no version"
        wait_until(
            lambda: reg.versions.get(version).status != VersionStatus.CANDIDATE,
            timeout,
            f"version {version} settled",
            process=self.workers[0],
            every=0.25,
        )
        return reg.versions.get(version)


def start_farm(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    sample_dir: Path,
    redis_mode: str,
    extra_config: str = "",
    *,
    time_limit: str = "5m",
    start: bool = True,
) -> Iterator[Farm]:
    """A farm home with the BTC sample imported and one real worker (2 pool processes); all torn down.

    ``redis_mode``: "embedded" (the home's own server), "system" (the system Redis, this pytest process's
    own database, flushed), or the ``redis://`` URL of a server the caller started and stops. With
    ``start=False`` the worker is created but not started (the caller adjusts and starts it).
    """
    home = tmp_path / "home"
    home.mkdir()
    config = home / "farm.toml"
    config.write_text(TEST_CONFIG.format(extra=extra_config, time_limit=time_limit))
    for key in list(os.environ):
        if key.startswith("FARM_"):
            monkeypatch.delenv(key)
    env_vars = {"FARM_HOME": str(home), "FARM_CONFIG_FILE": str(config)}
    system_url = None
    if redis_mode == "system":
        require_system_redis()
        system_url = system_redis_url("farm")
        redis.Redis.from_url(system_url).flushdb()
        env_vars["FARM_REDIS_URL"] = system_url
    elif redis_mode.startswith("redis://"):
        env_vars["FARM_REDIS_URL"] = redis_mode
    for key, value in env_vars.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    rebind()  # this process's Celery app may still point at a previous test's Redis
    open_store().import_file(sample_dir / "BTC_USDT-5m.parquet", SYMBOL)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")} | env_vars
    worker = WorkerProcess(f"w{uuid.uuid4().hex[:6]}", env, tmp_path, concurrency=2)
    farm = Farm(home, env, [worker])
    try:
        if start:
            worker.start()
        yield farm
    finally:
        for w in farm.workers:
            w.stop(timeout=10)  # a task the test left running need not finish: the home is thrown away
        if system_url:
            redis.Redis.from_url(system_url).flushdb()
        elif redis_mode == "embedded":
            embedded_redis().stop()
        get_settings.cache_clear()
