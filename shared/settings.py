"""The farm's settings: one pydantic-settings object, environment prefix ``FARM_``.

Read settings only through :func:`get_settings`. Paths are made absolute when read, so that every process
started from the same environment (CLI, workers, beat, bots) agrees on the home folder whatever its
working directory.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from trainfarm.shared.config import FarmConfig, load_config


class FarmSettings(BaseSettings):
    """Process-level settings, each overridable by an environment variable ``FARM_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="FARM_", extra="ignore", frozen=True)

    home: Path = Field(
        Path(".farm"), description="folder for the store, artifacts, SQLite and embedded Redis"
    )
    redis_url: str | None = Field(
        None, description="redis:// or rediss:// URL of a Redis 7; unset = embedded Redis under home"
    )
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of the registry; unset = SQLite file under home"
    )
    artifact_root: Path | None = Field(None, description="artifact packs; unset = <home>/artifacts")
    data_root: Path | None = Field(None, description="bar store; unset = <home>/data")
    config_file: Path | None = Field(
        None,
        description="farm.toml with universe and per-timeframe parameters; unset = ./farm.toml "
        "when present, else the built-in defaults",
    )

    gpu_workers: bool = Field(
        False, description="GPU workers consume the 'gpu' queue; unset = every model routes to 'cpu'"
    )
    worker_threads: int | None = Field(
        None,
        ge=1,
        description="threads per training task; unset = cores / worker concurrency (set it when "
        "several workers share one machine, so that workers x concurrency x threads <= cores)",
    )
    max_deliveries: int = Field(
        3, ge=1, description="a task delivered more often than this (its worker keeps dying) fails for good"
    )
    flower_address: str = Field(
        "127.0.0.1", description="address Flower listens on (loopback unless told otherwise)"
    )
    flower_port: int = Field(5555, ge=1, le=65535, description="port Flower listens on")
    alert_webhook_url: SecretStr | None = Field(
        None, description="URL the JSON alerts are POSTed to (often carries a token); unset = webhook off"
    )
    alert_urls: SecretStr | None = Field(
        None,
        description="Apprise URLs the alerts go to (tgram://, slack://, discord://, matrix://, ntfy://, "
        "mailto://, json://, ...), separated by spaces or commas; each is a channel of its own and usually "
        "holds a token; unset = none",
    )
    smtp_password: SecretStr | None = Field(None, description="password of [alerts.email] user")
    pack_base_url: str | None = Field(
        None,
        description="http(s) URL of `farm serve-packs`: the champion key names each pack there, for bots "
        "on other machines; unset = file:// URIs (bots on this machine or mount)",
    )
    pack_server_address: str = Field("127.0.0.1", description="address `farm serve-packs` listens on")
    pack_server_port: int = Field(8766, ge=1, le=65535, description="port of `farm serve-packs`")
    pack_token: SecretStr | None = Field(
        None, description="bearer token `farm serve-packs` requires (and bots send); unset = none"
    )
    web_address: str = Field(
        "127.0.0.1",
        description="address the dashboard (`farm web`) listens on (loopback unless told otherwise)",
    )
    web_port: int = Field(8765, ge=1, le=65535, description="port of the dashboard and its /metrics")
    ui_user: str = Field("farm", min_length=1, description="basic-auth user of Flower and the dashboard")
    ui_password: SecretStr | None = Field(
        None,
        description="basic-auth password of Flower and the dashboard; unset = one generated into "
        "<home>/ui.credentials (mode 0600) on first use",
    )

    @field_validator("pack_base_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("FARM_PACK_BASE_URL must be an http:// or https:// URL")
        return value

    @field_validator("home", "artifact_root", "data_root", "config_file")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @property
    def store_dir(self) -> Path:
        """Where imported 5m bars live, one folder per canonical symbol."""
        return self.data_root or self.home / "data"

    @property
    def artifacts_dir(self) -> Path:
        """Root of the artifact packs."""
        return self.artifact_root or self.home / "artifacts"

    @property
    def datasets_dir(self) -> Path:
        """Dataset snapshots (content-addressed Parquet)."""
        return self.artifacts_dir / "datasets"

    @property
    def runs_dir(self) -> Path:
        """Staging folders of runs in progress (base models, predictions), before a pack exists."""
        return self.artifacts_dir / "runs"

    @property
    def database(self) -> str:
        """The registry's SQLAlchemy URL."""
        return self.database_url or f"sqlite:///{self.home / 'registry.sqlite3'}"

    def config_path(self) -> Path | None:
        """The config file in force: the configured one, else ./farm.toml if it exists."""
        if self.config_file is not None:
            return self.config_file
        local = Path("farm.toml").resolve()
        return local if local.is_file() else None

    def load_config(self) -> FarmConfig:
        """Parse and validate the config file in force."""
        return load_config(self.config_path())


@lru_cache(maxsize=1)
def get_settings() -> FarmSettings:
    """The settings of this process (read once; tests call ``get_settings.cache_clear()``)."""
    return FarmSettings()
