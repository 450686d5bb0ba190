"""Requests to the farm's dashboard as its user.

A plain helper module (neither a test module nor a conftest).
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.services import free_port, stop_process
from tests.support.waiting import wait_until
from trainfarm.shared.settings import FarmSettings
from trainfarm.shared.ui_auth import ui_credentials


def basic_auth(settings: FarmSettings, password: str | None = None) -> dict[str, str]:
    """The Authorization header of the dashboard's user (with ``password`` instead of theirs, if given)."""
    creds = ui_credentials(settings)
    token = base64.b64encode(f"{creds.user}:{password or creds.password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@contextmanager
def farm_web(settings: FarmSettings, tmp_path: Path, config: str) -> Iterator[str]:
    """`farm web` as its own process on the farm of ``settings`` with ``config`` as its farm.toml; its
    address while the block runs, then stopped (terminated, killed if it does not stop)."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    env |= {"FARM_HOME": str(settings.home), "FARM_WEB_PORT": str(port)}
    config_file = tmp_path / "farm.toml"
    config_file.write_text(config)
    env["FARM_CONFIG_FILE"] = str(config_file)
    log = tmp_path / "web.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from trainfarm.cli.app import main; main()", "web"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: b"Uvicorn running" in log.read_bytes() or proc.poll() is not None,
            60,
            "farm web",
            every=0.25,
        )
        assert proc.poll() is None, log.read_text(errors="replace")
        yield f"http://127.0.0.1:{port}"
    finally:
        stop_process(proc)
