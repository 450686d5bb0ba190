"""Requests to the farm's dashboard as its user.

A plain helper module (neither a test module nor a conftest).
"""

from __future__ import annotations

import base64

from trainfarm.shared.settings import FarmSettings
from trainfarm.shared.ui_auth import ui_credentials


def basic_auth(settings: FarmSettings, password: str | None = None) -> dict[str, str]:
    """The Authorization header of the dashboard's user (with ``password`` instead of theirs, if given)."""
    creds = ui_credentials(settings)
    token = base64.b64encode(f"{creds.user}:{password or creds.password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}
