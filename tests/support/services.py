"""Where the tests find the repository, its data and the services outside it; skip locally, fail under CI.

A plain helper module (neither a test module nor a conftest): test modules and conftest files import from
it; fixtures stay in the conftest files.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "IN_CI",
    "MAX_TEST_PROCESSES",
    "PG_HOST",
    "PG_PORT",
    "PG_USER",
    "REPO_ROOT",
    "SAMPLE_DIR",
    "SHARED_DATA",
    "SYSTEM_REDIS_DBS",
    "SYSTEM_REDIS_HOST",
    "SYSTEM_REDIS_PORT",
    "RedisServer",
    "free_port",
    "postgres_database",
    "python_json",
    "python_json_loaded",
    "require",
    "require_system_redis",
    "stop_process",
    "suite_process_index",
    "system_redis_url",
    "tcp_port_open",
]

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The compact real sample bundled with the repository (always present).
SAMPLE_DIR = REPO_ROOT / "cli" / "demo" / "sample"
#: The large real Binance bars beside the repository (absent on most machines).
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"

#: CI must not skip what it could not find: a missing service or data folder there is a failure.
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

#: The PostgreSQL server the registry tests use when it accepts connections (CI runs it as a service).
PG_HOST, PG_PORT, PG_USER = "127.0.0.1", 5432, "postgres"
#: A Redis server outside the farm home (CI runs it as a service); the embedded one needs nothing.
SYSTEM_REDIS_HOST, SYSTEM_REDIS_PORT = "127.0.0.1", 6379


def require(condition: bool, reason: str) -> None:
    """Skip locally when ``condition`` is false, but fail under CI, where the thing must exist."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this must be available in CI)")
    pytest.skip(reason)


def tcp_port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections at host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


#: ``make test`` runs one pytest process per core, up to this many (``--maxprocesses``), each with its own
#: databases on the system Redis (:func:`system_redis_url`).
MAX_TEST_PROCESSES = 4
#: The system Redis databases a test module may claim: each is the first of MAX_TEST_PROCESSES consecutive
#: databases, one per pytest process (Redis has 16).
SYSTEM_REDIS_DBS = {"redis_runtime": 0, "farm": 4, "multi_host": 8}


def suite_process_index() -> int:
    """This pytest process's index among ``make test``'s processes (pytest-xdist's ``gw<N>``; 0 alone)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker.removeprefix("gw"))
    if index >= MAX_TEST_PROCESSES:
        raise RuntimeError(f"pytest process {worker}: at most {MAX_TEST_PROCESSES} share the system Redis")
    return index


def system_redis_url(user: str) -> str:
    """URL of ``user``'s database on the system Redis at SYSTEM_REDIS_HOST:SYSTEM_REDIS_PORT.

    ``user`` is a key of SYSTEM_REDIS_DBS; each pytest process gets its own database, so that two modules
    that flush theirs never run on one database at once.
    """
    return f"redis://{SYSTEM_REDIS_HOST}:{SYSTEM_REDIS_PORT}/{SYSTEM_REDIS_DBS[user] + suite_process_index()}"


def require_system_redis() -> None:
    """Skip (fail under CI) unless the system Redis accepts connections."""
    require(
        tcp_port_open(SYSTEM_REDIS_HOST, SYSTEM_REDIS_PORT),
        f"no Redis at {SYSTEM_REDIS_HOST}:{SYSTEM_REDIS_PORT}",
    )


def python_json(code: str, *, env: dict[str, str] | None = None, timeout: float = 120) -> Any:
    """Run ``code`` in a fresh interpreter at the repository root; return the JSON on its last output line.

    A fresh interpreter is the only honest place to check what an import loads (this process has loaded
    everything already). ``env`` replaces the environment when given. The script's failure fails the test
    with the end of its stderr.
    """
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


#: Defines ``loaded(names)`` in a script run by :func:`python_json_loaded`: which of ``names`` (top-level
#: packages) the script has imported so far. A name mapped to None is a blocked import, not a loaded module.
LOADED_PRELUDE = """
import json, sys
def loaded(names):
    return sorted({m.split(".")[0] for m, mod in sys.modules.items() if mod is not None} & set(names))
"""


def python_json_loaded(script: str, *, timeout: float = 300) -> dict[str, object]:
    """:func:`python_json` of ``script`` (dedented), with ``loaded(names)`` defined first."""
    result: dict[str, object] = python_json(
        textwrap.dedent(LOADED_PRELUDE) + textwrap.dedent(script), timeout=timeout
    )
    return result


def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on PG_HOST:PG_PORT (dropped afterwards); yields its URL.

    Skipped locally (failed under CI) when the server or psycopg is missing.
    """
    import importlib.util
    import secrets

    require(tcp_port_open(PG_HOST, PG_PORT), f"no PostgreSQL at {PG_HOST}:{PG_PORT}")
    require(importlib.util.find_spec("psycopg") is not None, "psycopg is not installed")
    import psycopg

    from trainfarm.shared.registry import dispose_engine

    name = f"trainfarm_test_{secrets.token_hex(6)}"
    admin = f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = f"postgresql+psycopg://{PG_USER}@{PG_HOST}:{PG_PORT}/{name}"
    try:
        yield url
    finally:
        dispose_engine(url)
        with psycopg.connect(admin, autocommit=True) as conn:
            # FORCE: a test that failed half-way may leave a connection open; the database must still go.
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM ``proc``, then SIGKILL if it has not exited within ``timeout`` seconds; reaped either way."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


class RedisServer:
    """A `redis-server` a test starts, stops and starts again itself, on 127.0.0.1 and a folder of its own.

    The same port and data folder across restarts, so clients reconnect to the same server, as after a
    real restart. ``args`` are extra ``redis-server`` options (``--appendonly yes``, ``--requirepass``...).
    """

    def __init__(self, folder: Path, *args: str, port: int | None = None) -> None:
        binary = shutil.which("redis-server")
        require(binary is not None, "no redis-server on PATH")
        assert binary is not None
        self.binary, self.folder, self.args = binary, folder, args
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        folder.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.folder / "redis.log"

    def start(self, timeout: float = 30.0) -> RedisServer:
        """Start the server and wait until it accepts connections."""
        argv = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder)]
        argv += ["--save", "", *self.args]
        seen = self.log_path.read_bytes().count(b"Ready to accept") if self.log_path.exists() else 0
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while self.log_path.read_bytes().count(b"Ready to accept") <= seen:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                text = self.log_path.read_text(errors="replace")
                raise RuntimeError(f"redis-server did not start:\n{text}")
            time.sleep(0.05)
        return self

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (Redis writes its append-only file and exits), SIGKILL if it does not in time."""
        if self.proc is not None:
            stop_process(self.proc, timeout)
