"""`farm up`: Redis, workers and beat in one foreground command; SIGINT leaves no process behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from trainfarm.shared.connections import EmbeddedRedis
from trainfarm.workers.processes import wait_for

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
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    env |= {"FARM_HOME": str(home), "FARM_CONFIG_FILE": str(home / "farm.toml")}
    out = tmp_path / "up.log"
    with out.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from trainfarm.cli.app import main; main()", "up", "--workers", "2"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        yield proc, home, out
    finally:  # whatever the test saw, nothing it started may outlive it
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
        for child in _descendants_of_session(proc.pid):
            child.kill()
        EmbeddedRedis(home).stop()


def _descendants_of_session(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def test_sigint_stops_every_process_farm_up_started(up: tuple[subprocess.Popen[bytes], Path, Path]) -> None:
    proc, home, out = up
    wait_for(lambda: b"farm up: ready" in out.read_bytes() or proc.poll() is not None, 120, "farm up ready")
    assert proc.poll() is None, out.read_text(errors="replace")[-3000:]
    tree = psutil.Process(proc.pid).children(recursive=True)
    commands = [" ".join(p.cmdline()) for p in tree]
    assert sum("trainfarm.workers worker" in c for c in commands) >= 2, commands  # the workers (and pools)
    assert sum("trainfarm.beat.app beat" in c for c in commands) == 1, commands
    redis_pid = EmbeddedRedis(home).pid()
    assert redis_pid is not None and psutil.pid_exists(redis_pid)
    # One merged log, each line prefixed with its process's name.
    wait_for(lambda: b"beat  | " in out.read_bytes() and b"cpu2  | " in out.read_bytes(), 30, "merged log")
    assert b"cpu1  | " in out.read_bytes()

    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=120) == 0, out.read_text(errors="replace")[-3000:]
    _, alive = psutil.wait_procs(tree, timeout=10)
    assert not alive, [p.cmdline() for p in alive]
    assert not psutil.pid_exists(redis_pid) or psutil.Process(redis_pid).status() == psutil.STATUS_ZOMBIE
    assert b"farm up: stopped" in out.read_bytes()
