"""`farm flower`: Flower on the farm's Celery app, on loopback and behind basic auth by default.

Flower shows every task with its arguments and lets a visitor revoke tasks and shut workers down, so it
never runs without credentials: the operator UIs' (:mod:`trainfarm.shared.ui_auth`). They reach Flower
through its environment (``FLOWER_BASIC_AUTH``), not its command line, where `ps` would show them.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from trainfarm.cli.output import console
from trainfarm.shared.settings import FarmSettings, get_settings
from trainfarm.shared.ui_auth import ui_credentials


def flower_env(settings: FarmSettings) -> dict[str, str]:
    """What a Flower process's environment needs besides the farm's: its basic auth."""
    creds = ui_credentials(settings)
    return {"FLOWER_BASIC_AUTH": f"{creds.user}:{creds.password}"}


def flower(
    address: Annotated[
        str | None, typer.Option("--address", help="listen address (default FARM_FLOWER_ADDRESS: loopback)")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="port (default FARM_FLOWER_PORT: 5555)")] = None,
) -> None:
    """Run Flower on the farm's Celery app (basic auth always on; see `farm config` for the settings)."""
    settings = get_settings()
    env = dict(os.environ) | flower_env(settings)
    creds = ui_credentials(settings)
    address = address or settings.flower_address
    port = port or settings.flower_port
    console.print(f"Flower at http://{address}:{port} (user {creds.user}; password from {creds.source})")
    # Through the farm's entry point: Flower's /metrics gets the same auth as its pages (flower_main).
    argv = [sys.executable, "-m", "trainfarm.cli.flower_main", "-A", "trainfarm.workers", "flower"]
    os.execve(sys.executable, [*argv, f"--address={address}", f"--port={port}"], env)


def register(app: typer.Typer) -> None:
    """Add `flower` to the main `farm` app."""
    app.command("flower")(flower)
