"""`farm flower`: Flower on the farm's Celery app, on loopback and behind basic auth by default.

Flower shows every task with its arguments and lets a visitor revoke tasks and shut workers down, so it
never runs without credentials. They come from the settings (``FARM_FLOWER_USER``,
``FARM_FLOWER_PASSWORD``); without a configured password one is generated on first use into
``<home>/flower.credentials`` (mode 0600, reused afterwards), and the commands print that file's path,
never the password. They reach Flower through its environment (``FLOWER_BASIC_AUTH``), not its command
line.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path
from typing import Annotated

import typer

from trainfarm.cli.output import console
from trainfarm.shared.atomicio import atomic_write_text
from trainfarm.shared.errors import ConfigError
from trainfarm.shared.settings import FarmSettings, get_settings

CREDENTIALS_FILE = "flower.credentials"


def credentials_path(settings: FarmSettings) -> Path:
    """Where a generated Flower password is kept."""
    return settings.home / CREDENTIALS_FILE


def flower_auth(settings: FarmSettings) -> tuple[str, str, str]:
    """(user, password, where the password comes from) for Flower's basic auth."""
    if settings.flower_password is not None:
        password = settings.flower_password.get_secret_value()
        if not password or ":" in settings.flower_user or "," in password + settings.flower_user:
            raise ConfigError(
                "FARM_FLOWER_USER and FARM_FLOWER_PASSWORD must be non-empty, the user without ':' and "
                "neither with ',' (Flower's basic_auth is a comma-separated list of user:password)"
            )
        return settings.flower_user, password, "FARM_FLOWER_PASSWORD"
    path = credentials_path(settings)
    if path.is_file():
        user, _, password = path.read_text().strip().partition(":")
        if user and password:
            return user, password, str(path)
    password = secrets.token_urlsafe(18)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, f"{settings.flower_user}:{password}\n", mode=0o600)
    return settings.flower_user, password, str(path)


def flower_env(settings: FarmSettings) -> dict[str, str]:
    """What a Flower process's environment needs besides the farm's: its basic auth."""
    user, password, _ = flower_auth(settings)
    return {"FLOWER_BASIC_AUTH": f"{user}:{password}"}


def flower(
    address: Annotated[
        str | None, typer.Option("--address", help="listen address (default FARM_FLOWER_ADDRESS: loopback)")
    ] = None,
    port: Annotated[int | None, typer.Option("--port", help="port (default FARM_FLOWER_PORT: 5555)")] = None,
) -> None:
    """Run Flower on the farm's Celery app (basic auth always on; see `farm config` for the settings)."""
    settings = get_settings()
    env = dict(os.environ) | flower_env(settings)
    _, _, source = flower_auth(settings)
    address = address or settings.flower_address
    port = port or settings.flower_port
    console.print(f"Flower at http://{address}:{port} (user {settings.flower_user}; password from {source})")
    argv = [sys.executable, "-m", "celery", "-A", "trainfarm.workers", "flower"]
    os.execve(sys.executable, [*argv, f"--address={address}", f"--port={port}"], env)


def register(app: typer.Typer) -> None:
    """Add `flower` to the main `farm` app."""
    app.command("flower")(flower)
