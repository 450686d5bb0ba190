"""The embedded Redis is one real server per home folder, shared by every farm process; a URL overrides it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import redis

from tests.support.services import require_system_redis, system_redis_url
from trainfarm.shared.connections import EmbeddedRedis, embedded_redis, redis_client, redis_url
from trainfarm.shared.settings import FarmSettings, get_settings

pytestmark = pytest.mark.integration

#: A child process that prints what the farm's Redis holds under a key (a second farm process).
_READER = (
    "import sys; from trainfarm.shared.connections import redis_client; "
    "print(redis_client().get(sys.argv[1]))"
)


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    env.update(FARM_HOME=str(home), **extra)
    return env


@pytest.fixture
def server(settings: FarmSettings) -> Iterator[EmbeddedRedis]:
    """The test home's embedded server, always stopped afterwards."""
    srv = embedded_redis(settings)
    yield srv
    srv.stop()


def test_embedded_server_is_real_and_found_by_other_processes(server: EmbeddedRedis, farm_home: Path) -> None:
    url = redis_url()
    assert url.startswith("unix://") and server.is_running()
    client = redis_client()
    client.set("farm:test:hello", "world")
    info = client.info("server")
    assert str(info["redis_version"]).startswith(("6.", "7."))
    # A second farm process with the same home reaches the same server (no second one is started).
    out = subprocess.run(
        [sys.executable, "-c", _READER, "farm:test:hello"],
        env=_env(farm_home),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert out.stdout.strip() == "world"
    assert server.pid() == info["process_id"]


def test_server_outlives_the_process_that_started_it(server: EmbeddedRedis, farm_home: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "trainfarm.cli", "redis", "start"],
        env=_env(farm_home),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert server.is_running()


def test_concurrent_starts_make_one_server(server: EmbeddedRedis, farm_home: Path) -> None:
    cmd = [
        sys.executable,
        "-c",
        "from trainfarm.shared.connections import redis_client as c; print(c().info()['process_id'])",
    ]
    with ThreadPoolExecutor(4) as pool:
        outs = list(
            pool.map(
                lambda _: subprocess.run(
                    cmd, env=_env(farm_home), capture_output=True, text=True, timeout=60, check=True
                ).stdout.strip(),
                range(4),
            )
        )
    assert len(set(outs)) == 1
    assert int(outs[0]) == server.pid()


def test_data_survives_a_restart_append_only(server: EmbeddedRedis) -> None:
    redis_client().set("farm:test:durable", "yes")
    assert server.stop()
    assert not server.is_running()
    assert redis_client().get("farm:test:durable") == "yes"  # restarted on demand, AOF replayed


def test_restarts_after_a_kill_leaves_a_stale_socket(server: EmbeddedRedis) -> None:
    redis_url()
    pid = server.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    for _ in range(250):  # bounded: init reaps the daemonised server within moments
        if server.pid() is None:
            break
        time.sleep(0.02)
    assert server.socket_path.exists()  # stale socket left behind
    assert redis_client().ping()
    assert server.pid() not in (None, pid)


def test_long_home_path_moves_the_socket_to_tmp(tmp_path: Path) -> None:
    home = tmp_path / ("deep-" * 30) / "home"
    srv = EmbeddedRedis(home)
    try:
        assert len(str(srv.socket_path)) < 100
        srv.ensure_running()
        assert redis.Redis.from_url(srv.url).ping()
    finally:
        srv.stop()


def test_configured_url_is_used_instead_of_embedded(farm_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_system_redis()
    url = system_redis_url("redis_runtime")
    monkeypatch.setenv("FARM_REDIS_URL", url)
    get_settings.cache_clear()
    assert redis_url() == url
    key = f"farm:test:{uuid.uuid4().hex}"
    client = redis_client()
    try:
        client.set(key, "system", ex=60)
        out = subprocess.run(
            [sys.executable, "-c", _READER, key],
            env=_env(farm_home, FARM_REDIS_URL=url),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert out.stdout.strip() == "system"
    finally:
        client.delete(key)
    assert not (farm_home / "redis").exists()  # no embedded server was started


def test_cli_status_and_stop(server: EmbeddedRedis, farm_home: Path) -> None:
    def farm(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "trainfarm.cli", *args],
            env=_env(farm_home),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    status = farm("redis", "status", "--json")
    assert status.returncode == 0 and '"running": false' in status.stdout
    farm("redis", "start")
    assert '"running": true' in farm("redis", "status", "--json").stdout
    assert farm("redis", "stop").returncode == 0
    assert not server.is_running()
