"""`farm up`: Redis, workers, beat, dashboard and Flower in one command; SIGINT leaves nothing behind."""

from __future__ import annotations

import base64
import contextlib
import os
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.support.services import free_port
from tests.support.waiting import wait_until
from trainfarm.shared.connections import EmbeddedRedis

CONFIG = """
[universe]
symbols = ["BTC_USDT"]
timeframes = ["12h"]
"""


@pytest.fixture
def up(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], Path, Path]]:
    home = tmp_path / "home"
    home.mkdir()
    (home / "farm.toml").write_text(CONFIG)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FARM_", "FLOWER_"))}
    env |= {
        "FARM_HOME": str(home),
        "FARM_CONFIG_FILE": str(home / "farm.toml"),
        "FARM_FLOWER_PORT": str(free_port()),
        "FARM_WEB_PORT": str(free_port()),
    }
    out = tmp_path / "up.log"
    argv = ["up", "--workers", "2", "--flower"]
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from trainfarm.cli.app import main; main()", *argv],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc, home, out
    finally:  # whatever the test saw, nothing it started may outlive it
        # The children first, while farm up is alive: each sits in its own session (so a killpg of farm
        # up's group misses them), and once farm up is dead they are no longer its descendants.
        children = _descendants_of_session(proc.pid)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        for child in children:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()
        psutil.wait_procs(children, timeout=30)
        EmbeddedRedis(home).stop()


def _descendants_of_session(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _get(url: str, auth: str | None = None) -> int:
    request = urllib.request.Request(url)
    if auth is not None:
        request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def _flower_refuses_strangers_and_answers_its_user(home: Path, out: Path, commands: list[str]) -> None:
    """Basic auth: a generated password in a 0600 file, never on a command line or in the log."""
    credentials = home / "ui.credentials"
    assert credentials.stat().st_mode & 0o777 == 0o600
    auth = credentials.read_text().strip()
    user, _, password = auth.partition(":")
    assert user == "farm" and len(password) >= 20
    port = next(a.split("=")[1] for c in commands for a in c.split() if a.startswith("--port="))
    assert "--address=127.0.0.1" in " ".join(commands)
    url = f"http://127.0.0.1:{port}/api/workers"
    assert _get(url) == 401
    assert _get(url, f"{user}:wrong") == 401
    assert _get(url, auth) == 200
    assert f"Flower at http://127.0.0.1:{port}" in out.read_text(errors="replace")
    assert password not in out.read_text(errors="replace") and not any(password in c for c in commands)


def _dashboard_answers_behind_the_same_auth(home: Path, out: Path) -> None:
    line = next(x for x in out.read_text(errors="replace").splitlines() if "dashboard at http://" in x)
    base = line.split("dashboard at ")[1].split()[0]
    assert base.startswith("http://127.0.0.1:")
    auth = (home / "ui.credentials").read_text().strip()
    assert _get(base + "/") == 401 and _get(base + "/", auth) == 200
    assert _get(base + "/metrics", auth) == 200


def test_sigint_stops_every_process_farm_up_started(up: tuple[subprocess.Popen[bytes], Path, Path]) -> None:
    proc, home, out = up
    wait_until(
        lambda: b"farm up: ready" in out.read_bytes() or proc.poll() is not None,
        120,
        "farm up ready",
        every=0.25,
    )
    assert proc.poll() is None, out.read_text(errors="replace")[-3000:]
    tree = psutil.Process(proc.pid).children(recursive=True)
    commands = [" ".join(p.cmdline()) for p in tree]
    assert sum("trainfarm.workers worker" in c for c in commands) >= 2, commands  # the workers (and pools)
    assert sum("trainfarm.beat.app beat" in c for c in commands) == 1, commands
    assert sum("trainfarm.workers flower" in c for c in commands) == 1, commands
    assert sum(c.endswith("main() web") for c in commands) == 1, commands  # the dashboard
    _flower_refuses_strangers_and_answers_its_user(home, out, commands)
    _dashboard_answers_behind_the_same_auth(home, out)
    redis_pid = EmbeddedRedis(home).pid()
    assert redis_pid is not None and psutil.pid_exists(redis_pid)
    # One merged log, each line prefixed with its process's name.
    # (names padded to the longest, "flower")
    wait_until(
        lambda: b"beat   | " in out.read_bytes() and b"cpu2   | " in out.read_bytes(),
        30,
        "merged log",
        every=0.25,
    )
    assert b"cpu1   | " in out.read_bytes() and b"flower | " in out.read_bytes()

    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 0, out.read_text(errors="replace")[-3000:]
    _, alive = psutil.wait_procs(tree, timeout=10)
    assert not alive, [p.cmdline() for p in alive]
    assert not psutil.pid_exists(redis_pid) or psutil.Process(redis_pid).status() == psutil.STATUS_ZOMBIE
    assert b"farm up: stopped" in out.read_bytes()
