"""Flower's credentials: configured, or generated once into a 0600 file; never printed, never in argv."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from trainfarm.cli.app import app
from trainfarm.cli.flower_cmds import flower_auth, flower_env
from trainfarm.shared.errors import ConfigError
from trainfarm.shared.settings import get_settings


def test_a_password_is_generated_once_into_a_private_file_and_reused(farm_home: Path) -> None:
    user, password, source = flower_auth(get_settings())
    path = farm_home / "flower.credentials"
    assert source == str(path) and user == "farm" and len(password) >= 20
    assert path.stat().st_mode & 0o777 == 0o600
    assert flower_auth(get_settings())[1] == password  # the same on every later start
    assert flower_env(get_settings()) == {"FLOWER_BASIC_AUTH": f"farm:{password}"}


def test_a_configured_password_wins_and_is_masked_by_farm_config(
    farm_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FARM_FLOWER_USER", "ops")
    monkeypatch.setenv("FARM_FLOWER_PASSWORD", "s3cret-Flower-pw")
    get_settings.cache_clear()
    assert flower_auth(get_settings()) == ("ops", "s3cret-Flower-pw", "FARM_FLOWER_PASSWORD")
    assert not (farm_home / "flower.credentials").exists()
    result = CliRunner().invoke(app, ["config"])
    assert result.exit_code == 0, result.output
    assert "s3cret-Flower-pw" not in result.stdout
    settings = json.loads(result.stdout)["settings"]
    assert settings["flower_password"] == "**********" and settings["flower_address"] == "127.0.0.1"


@pytest.mark.parametrize(("user", "password"), [("a:b", "pw"), ("ops", "p,w"), ("ops", "")])
def test_credentials_flower_cannot_parse_are_refused(
    farm_home: Path, monkeypatch: pytest.MonkeyPatch, user: str, password: str
) -> None:
    monkeypatch.setenv("FARM_FLOWER_USER", user)
    monkeypatch.setenv("FARM_FLOWER_PASSWORD", password)
    get_settings.cache_clear()
    with pytest.raises(ConfigError, match="FARM_FLOWER_PASSWORD"):
        flower_auth(get_settings())
