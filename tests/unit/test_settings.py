"""Settings: one object, env prefix FARM_, paths absolute so every process agrees."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainfarm.shared.settings import FarmSettings, get_settings


def test_defaults_derive_everything_from_home(farm_home: Path) -> None:
    s = get_settings()
    assert s.home == farm_home.resolve()
    assert s.store_dir == s.home / "data"
    assert s.artifacts_dir == s.home / "artifacts"
    assert s.database == f"sqlite:///{s.home / 'registry.sqlite3'}"
    assert s.redis_url is None


def test_env_overrides_and_relative_paths_become_absolute(
    farm_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("FARM_HOME", "relative-home")
    monkeypatch.setenv("FARM_REDIS_URL", "redis://127.0.0.1:6379/3")
    monkeypatch.setenv("FARM_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1/test")
    monkeypatch.setenv("FARM_ARTIFACT_ROOT", str(tmp_path / "packs"))
    s = FarmSettings()
    assert s.home == tmp_path / "relative-home"
    assert s.redis_url == "redis://127.0.0.1:6379/3"
    assert s.database.startswith("postgresql+psycopg://")
    assert s.artifacts_dir == tmp_path / "packs"


def test_config_file_in_force(farm_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert FarmSettings().config_path() is None  # no ./farm.toml: built-in defaults
    (tmp_path / "farm.toml").write_text("[data]\nmin_rows = 10\n")
    assert FarmSettings().load_config().data.min_rows == 10
    other = tmp_path / "other.toml"
    other.write_text("[data]\nmin_rows = 20\n")
    monkeypatch.setenv("FARM_CONFIG_FILE", str(other))
    assert FarmSettings().load_config().data.min_rows == 20


def test_get_settings_is_read_once(farm_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    monkeypatch.setenv("FARM_HOME", "/elsewhere")
    assert get_settings() is first
    get_settings.cache_clear()
    assert get_settings().home == Path("/elsewhere")
