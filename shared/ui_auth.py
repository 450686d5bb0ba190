"""The credentials of the farm's operator web UIs (Flower, the dashboard): one user, one password.

Both UIs show every market, run and task, and Flower can revoke tasks and stop workers, so neither ever
runs without basic auth. The credentials come from the settings (``FARM_UI_USER``, ``FARM_UI_PASSWORD``);
without a configured password one is generated on first use into ``<home>/ui.credentials`` (mode 0600,
written atomically, reused afterwards). Commands print where the password comes from, never the password.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path

from trainfarm.shared.atomicio import atomic_write_text
from trainfarm.shared.errors import ConfigError
from trainfarm.shared.settings import FarmSettings

CREDENTIALS_FILE = "ui.credentials"


@dataclass(frozen=True)
class UiCredentials:
    """The operator UIs' basic-auth user and password, and where the password comes from."""

    user: str
    password: str
    source: str  #: "FARM_UI_PASSWORD" or the credentials file's path

    def __repr__(self) -> str:  # never the password, whoever logs this object
        return f"UiCredentials(user={self.user!r}, source={self.source!r})"


def credentials_path(settings: FarmSettings) -> Path:
    """Where a generated password is kept."""
    return settings.home / CREDENTIALS_FILE


def ui_credentials(settings: FarmSettings) -> UiCredentials:
    """The configured credentials, else the generated ones (generated now when there are none yet)."""
    user = settings.ui_user
    if ":" in user or "," in user:
        raise ConfigError(
            "FARM_UI_USER must not contain ':' or ',' (Flower's basic_auth is user:password,...)"
        )
    if settings.ui_password is not None:
        password = settings.ui_password.get_secret_value()
        if not password or "," in password:
            raise ConfigError(
                "FARM_UI_PASSWORD must be non-empty and without ',' (Flower splits its list on ',')"
            )
        return UiCredentials(user, password, "FARM_UI_PASSWORD")
    path = credentials_path(settings)
    if path.is_file():
        stored_user, _, password = path.read_text().strip().partition(":")
        if stored_user == user and password:
            return UiCredentials(user, password, str(path))
    password = secrets.token_urlsafe(18)
    atomic_write_text(path, f"{user}:{password}\n", mode=0o600)
    return UiCredentials(user, password, str(path))


__all__ = ["CREDENTIALS_FILE", "UiCredentials", "credentials_path", "ui_credentials"]
