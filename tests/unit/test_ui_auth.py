"""The operator UIs' credentials: configured, or generated once into a 0600 file; never printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trainfarm.cli.app import app
from trainfarm.cli.flower_cmds import flower_env
from trainfarm.shared.errors import ConfigError
from trainfarm.shared.settings import get_settings
from trainfarm.shared.ui_auth import UiCredentials, ui_credentials


def test_a_password_is_generated_once_into_a_private_file_and_reused(farm_home: Path) -> None:
    creds = ui_credentials(get_settings())
    path = farm_home / "ui.credentials"
    assert creds.source == str(path) and creds.user == "farm" and len(creds.password) >= 20
    assert path.stat().st_mode & 0o777 == 0o600
    assert ui_credentials(get_settings()) == creds  # the same on every later start
    assert flower_env(get_settings()) == {"FLOWER_BASIC_AUTH": f"farm:{creds.password}"}
    assert creds.password not in repr(creds)


def test_a_configured_password_wins_and_is_masked_by_farm_config(
    farm_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FARM_UI_USER", "ops")
    monkeypatch.setenv("FARM_UI_PASSWORD", "s3cret-Flower-pw")
    get_settings.cache_clear()
    assert ui_credentials(get_settings()) == UiCredentials("ops", "s3cret-Flower-pw", "FARM_UI_PASSWORD")
    assert not (farm_home / "ui.credentials").exists()
    result = CliRunner().invoke(app, ["config"])
    assert result.exit_code == 0, result.output
    assert "s3cret-Flower-pw" not in result.stdout
    settings = json.loads(result.stdout)["settings"]
    assert settings["ui_password"] == "**********" and settings["flower_address"] == "127.0.0.1"


@pytest.mark.parametrize(
    ("user", "password", "named"),
    [("a:b", "pw", "FARM_UI_USER"), ("ops", "p,w", "FARM_UI_PASSWORD"), ("ops", "", "FARM_UI_PASSWORD")],
)
def test_credentials_flower_cannot_parse_are_refused(
    farm_home: Path, monkeypatch: pytest.MonkeyPatch, user: str, password: str, named: str
) -> None:
    monkeypatch.setenv("FARM_UI_USER", user)
    monkeypatch.setenv("FARM_UI_PASSWORD", password)
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match=named):
        ui_credentials(get_settings())
