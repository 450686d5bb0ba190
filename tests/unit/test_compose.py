"""docker-compose.yml: every role a real command of this project, healthchecks, no secret in the file.

Docker is not needed: the file is parsed, and every farm command it runs (service commands and healthcheck
commands) is run here with ``--help``, which fails for a command or an option that does not exist. The
monitoring services (Prometheus, Alertmanager, Grafana) mount the files infra/ holds where their configs
look, and get only the one secret each needs, as a file: the scrape's basic auth is never in a file here.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from tests.support.services import REPO_ROOT
from trainfarm.cli.app import app

COMPOSE = REPO_ROOT / "docker-compose.yml"
ENV_EXAMPLE = REPO_ROOT / "infra" / "env.example"
FARM_IMAGE = "trainfarm:latest"
#: The roles of a deployment, by service name.
ROLES = {"redis", "postgres", "migrate", "worker-cpu", "worker-gpu", "beat", "flower", "web", "packs", "bot"}
ONE_SHOT = {"migrate", "farm"}
#: The monitoring services: images of their own, no farm settings (.env), one secret file each at most.
MONITORING = {"prometheus", "alertmanager", "grafana"}
PROMETHEUS_CONFIG = REPO_ROOT / "infra" / "prometheus" / "prometheus.yml"


def _services() -> dict[str, dict[str, Any]]:
    loaded = yaml.safe_load(COMPOSE.read_text())  # merge keys (<<: *farm) resolved by the loader
    services: dict[str, dict[str, Any]] = loaded["services"]
    return services


def _farm_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in _services().items() if s.get("image") == FARM_IMAGE}


def _help(argv: list[str]) -> None:
    result = CliRunner().invoke(app, [*argv, "--help"])
    assert result.exit_code == 0, f"`farm {' '.join(argv)} --help` failed: {result.output[-2000:]}"


def _secrets() -> dict[str, dict[str, str]]:
    secrets: dict[str, dict[str, str]] = yaml.safe_load(COMPOSE.read_text())["secrets"]
    return secrets


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's bind mounts of repository files, container path -> repository path."""
    return {
        container: host.removeprefix("./")
        for host, container, *_ in (str(v).split(":") for v in service.get("volumes", []))
        if host.startswith("./")
    }


def test_every_role_is_there() -> None:
    assert set(_services()) >= ROLES | MONITORING


@pytest.mark.parametrize("name", sorted(ROLES - {"redis", "postgres"}))
def test_every_farm_service_runs_a_real_farm_command(name: str) -> None:
    service = _farm_services()[name]
    assert service["build"]["dockerfile"] == "infra/Dockerfile"
    _help([str(a) for a in service["command"]])


def test_every_long_running_service_has_a_healthcheck_that_is_a_real_command() -> None:
    for name, service in _services().items():
        if name in ONE_SHOT:
            continue
        check = service.get("healthcheck", {}).get("test")
        assert check, f"service {name} has no healthcheck"
        argv = shlex.split(check[1].replace("$$", "$")) if check[0] == "CMD-SHELL" else list(check[1:])
        if argv and argv[0] == "farm":
            _help([re.sub(r"\$\w+", "host", a) for a in argv[1:]])


def test_the_file_holds_no_secret_and_every_service_reads_them_from_env() -> None:
    text = COMPOSE.read_text()
    assert not re.search(r"://[^/\s:@]*:[^@\s/$]+@", text), "a URL with a password in docker-compose.yml"
    secret = re.compile(r"PASSWORD|TOKEN|SECRET|WEBHOOK|_URL$")
    for name, service in _services().items():
        env = service.get("environment", {})
        # NAME__FILE (Grafana's convention) names a file holding the secret: a path, no secret.
        files = {k for k, v in env.items() if k.endswith("__FILE") and str(v).startswith("/run/secrets/")}
        assert not [k for k in env if secret.search(k) and k not in files], f"{name} sets a secret here"
        if name in ROLES:
            assert service.get("env_file") == [".env"], f"{name} does not read .env"
        if name in MONITORING:
            assert "env_file" not in service, f"{name} would get every secret of .env"
    # Every variable the file expects from .env is in the template.
    template = {
        line.split("=")[0].lstrip("# ") for line in ENV_EXAMPLE.read_text().splitlines() if "=" in line
    }
    assert {"REDIS_PASSWORD", "POSTGRES_PASSWORD", "FARM_REDIS_URL", "FARM_DATABASE_URL"} <= template
    assert {"FARM_UI_PASSWORD", "FARM_PACK_TOKEN", "FARM_PACK_BASE_URL"} <= template
    assert {s["environment"] for s in _secrets().values()} <= template  # the secret files' sources
    assert ".env" in (REPO_ROOT / ".gitignore").read_text().split()


def test_redis_is_durable_and_refuses_to_evict() -> None:
    conf = (REPO_ROOT / "infra" / "redis.conf").read_text().split("\n")
    assert "appendonly yes" in conf and "maxmemory-policy noeviction" in conf
    redis = _services()["redis"]
    assert redis["image"].startswith("redis:7") and "--requirepass" in " ".join(redis["command"])


def test_workers_share_the_artifacts_and_the_gpu_worker_reserves_a_gpu() -> None:
    services = _farm_services()
    for name in ("worker-cpu", "worker-gpu", "beat", "web", "migrate"):
        volumes = services[name]["volumes"]
        assert "artifacts:/srv/artifacts" in volumes and "bars:/srv/bars" in volumes, name
    assert services["packs"]["volumes"] == ["artifacts:/srv/artifacts:ro"]  # read-only
    assert not any("artifacts" in v for v in services["bot"]["volumes"])  # the bot fetches over HTTP
    gpu = services["worker-gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"] and device["count"] == 1 and "--gpu" in gpu["command"]
    assert "gpu" in gpu["profiles"]


def test_published_ports_are_on_the_loopback_only() -> None:
    for name, service in _services().items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond the loopback"


def test_prometheus_scrapes_the_dashboard_with_its_basic_auth_from_a_secret_file() -> None:
    services = _services()
    prometheus = services["prometheus"]
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "trainfarm"  # the rules' up{job="trainfarm"}
    (targets,) = job["static_configs"]
    web_port = services["web"]["ports"][0].rsplit(":", 1)[-1]
    assert targets["targets"] == [f"web:{web_port}"]
    auth = job["basic_auth"]
    assert "password" not in auth and auth["password_file"].startswith("/run/secrets/")
    secret = auth["password_file"].removeprefix("/run/secrets/")
    assert secret in prometheus["secrets"] and _secrets()[secret] == {"environment": "FARM_UI_PASSWORD"}
    template = dict(
        line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines() if "=" in line and line[0] != "#"
    )
    assert auth["username"] == template["FARM_UI_USER"]
    # The config and the rules it loads (rule_files are relative to the config) are mounted side by side.
    mounts = _mounts(prometheus)
    config_path = next(c for c, h in mounts.items() if h == "infra/prometheus/prometheus.yml")
    assert f"--config.file={config_path}" in prometheus["command"]
    folder = config_path.rsplit("/", 1)[0]
    for rules in config["rule_files"]:
        assert mounts[f"{folder}/{rules}"] == f"infra/prometheus/{rules}"


def test_prometheus_alerts_through_alertmanager_whose_route_has_a_receiver() -> None:
    services = _services()
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    (managers,) = config["alerting"]["alertmanagers"]
    port = services["alertmanager"]["ports"][0].rsplit(":", 1)[-1]
    assert managers["static_configs"] == [{"targets": [f"alertmanager:{port}"]}]
    mounts = _mounts(services["alertmanager"])
    config_path = next(c for c, h in mounts.items() if h == "infra/alertmanager/alertmanager.yml")
    assert f"--config.file={config_path}" in services["alertmanager"]["command"]
    manager = yaml.safe_load((REPO_ROOT / "infra" / "alertmanager" / "alertmanager.yml").read_text())
    assert manager["route"]["receiver"] in {r["name"] for r in manager["receivers"]}
    assert "alertname" in manager["route"]["group_by"]


def test_grafana_reads_its_admin_password_from_a_secret_file_and_its_provisioning() -> None:
    grafana = _services()["grafana"]
    path = grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD__FILE"]
    secret = path.removeprefix("/run/secrets/")
    assert secret in grafana["secrets"] and _secrets()[secret] == {"environment": "GRAFANA_ADMIN_PASSWORD"}
    assert grafana["environment"]["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert _mounts(grafana)["/etc/grafana/provisioning"] == "infra/grafana/provisioning"
    for service in MONITORING:
        image = str(_services()[service]["image"])
        assert ":" in image and not image.endswith(":latest"), f"{service}: pin the image's version"
