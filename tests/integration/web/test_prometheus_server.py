"""A real Prometheus server (Debian's package; .ci/run installs it) scrapes `farm web` with the scrape
config of infra/prometheus/prometheus.yml, its basic auth included, evaluates the alert rules of
rules.yml on what it scraped, and answers every query of the Grafana dashboard and the autoscaler.

The repository's config is used as it is but for what only a deployment knows: the target's address, the
password file's path, the rules file's path, the intervals (seconds instead of 30 s, so that the test
waits seconds) and no Alertmanager. A second job with a wrong password shows that the scrape's credentials
are the ones that count. Skipped locally without the prometheus binary, failed under CI.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml

from tests.support.infra import dashboard_queries, keda_queries
from tests.support.promql import grafana_to_promql
from tests.support.scrape import populate
from tests.support.services import REPO_ROOT, free_port, require, stop_process
from tests.support.waiting import wait_until
from tests.support.web import farm_web
from trainfarm.shared.connections import EmbeddedRedis
from trainfarm.shared.settings import FarmSettings
from trainfarm.shared.ui_auth import ui_credentials

PROMETHEUS_DIR = REPO_ROOT / "infra" / "prometheus"


def _get(base: str, path: str, **query: str) -> Any:
    url = f"{base}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    with urllib.request.urlopen(url, timeout=10) as response:
        body = json.loads(response.read())
    assert body["status"] == "success", body
    return body["data"]


def _state(base: str, alert: str) -> str:
    [group] = _get(base, "/api/v1/rules")["groups"]
    return str(next(r for r in group["rules"] if r["name"] == alert)["state"])


def _config(target: str, password_file: Path, wrong_password_file: Path) -> dict[str, Any]:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"] |= {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(PROMETHEUS_DIR / "rules.yml")]
    config.pop("alerting")  # no Alertmanager here: the rules are evaluated all the same
    [job] = config["scrape_configs"]
    job["scrape_timeout"] = "1s"
    job["static_configs"] = [{"targets": [target]}]
    job["basic_auth"]["password_file"] = str(password_file)
    wrong = json.loads(json.dumps(job)) | {"job_name": "trainfarm-wrong-password"}
    wrong["basic_auth"]["password_file"] = str(wrong_password_file)
    config["scrape_configs"].append(wrong)
    return config


@contextmanager
def _prometheus(binary: str, config_file: Path, tmp_path: Path) -> Iterator[str]:
    """A Prometheus server on ``config_file`` while the block runs (its base URL), then stopped."""
    port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config_file}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"

    def scraped_and_evaluated() -> bool:
        if proc.poll() is not None:
            return True
        try:
            targets = _get(base, "/api/v1/targets")["activeTargets"]
            groups = _get(base, "/api/v1/rules")["groups"]
        except OSError:
            return False
        healths = [t["health"] for t in targets]
        evaluated = bool(groups) and all(r["lastEvaluation"][:4] != "0001" for r in groups[0]["rules"])
        return len(healths) == 2 and "unknown" not in healths and evaluated

    try:
        wait_until(scraped_and_evaluated, 90, "prometheus' first scrapes and rule evaluations", every=0.5)
        assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
        yield base
    finally:
        stop_process(proc)


def test_prometheus_scrapes_the_dashboard_with_its_basic_auth_and_evaluates_the_rules(
    settings: FarmSettings, server: EmbeddedRedis, tmp_path: Path
) -> None:
    binary = shutil.which("prometheus")
    require(binary is not None, "no prometheus binary (Debian: apt-get install prometheus)")
    assert binary is not None
    populate(settings)  # a champion, runs, a rejected version, a bot, one waiting task on "cpu"
    creds = ui_credentials(settings)
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    # The config names the dashboard's default user; the password comes from a file (a compose secret).
    assert config["scrape_configs"][0]["basic_auth"]["username"] == creds.user
    password_file, wrong_file = tmp_path / "ui_password", tmp_path / "wrong_password"
    password_file.write_text(creds.password)
    wrong_file.write_text(creds.password + "-not")
    alerts = [
        r["alert"] for r in yaml.safe_load((PROMETHEUS_DIR / "rules.yml").read_text())["groups"][0]["rules"]
    ]
    with farm_web(settings, tmp_path, '[universe]\nsymbols = ["BTC_USDT", "ETH_USDT"]\n') as url:
        config_file = tmp_path / "prometheus.yml"
        target = urllib.parse.urlsplit(url).netloc
        config_file.write_text(yaml.safe_dump(_config(target, password_file, wrong_file)))
        with _prometheus(binary, config_file, tmp_path) as base:
            by_job = {t["labels"]["job"]: t for t in _get(base, "/api/v1/targets")["activeTargets"]}
            # What the scrape brought in: the waiting task, the champion.
            depth = _get(base, "/api/v1/query", query='trainfarm_queue_depth{queue="cpu"}')["result"]
            champions = _get(base, "/api/v1/query", query="trainfarm_champion_age_seconds")["result"]
            [group] = _get(base, "/api/v1/rules")["groups"]
            # Every Grafana panel's and the autoscaler's query, evaluated by the server on what it scraped.
            answers = {
                where: _get(base, "/api/v1/query", query=grafana_to_promql(expr))["result"]
                for where, expr in dashboard_queries() + keda_queries()
            }
    assert by_job["trainfarm"]["health"] == "up", by_job["trainfarm"]["lastError"]
    assert by_job["trainfarm-wrong-password"]["health"] == "down"
    assert "401" in by_job["trainfarm-wrong-password"]["lastError"]
    assert [float(s["value"][1]) for s in depth] == [1.0]
    assert {(s["metric"]["symbol"], s["metric"]["timeframe"]) for s in champions} == {("BTC_USDT", "1h")}
    # Every alert rule of rules.yml loaded and evaluated without an error on the real series.
    assert [r["name"] for r in group["rules"]] == alerts
    assert {r["name"]: r["health"] for r in group["rules"]} == dict.fromkeys(alerts, "ok")
    # The autoscaler sees the waiting task; the dashboard's headline panels have data.
    [keda] = [answers[where] for where, _ in keda_queries()]
    assert [float(s["value"][1]) for s in keda] == [1.0]
    headline = [w for w, _ in dashboard_queries() if any(t in w for t in ("'Tasks waiting'", "'Bots'"))]
    assert len(headline) == 2 and all(answers[w] for w in headline), {w: answers[w] for w in headline}
