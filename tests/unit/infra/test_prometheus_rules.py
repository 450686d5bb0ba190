"""infra/prometheus: the alert rules and the scrape config are valid for Prometheus, and every alert fires
on synthetic series where it should and stays quiet where it should not (``promtool test rules``).

promtool is Prometheus' own checker (Debian's package ``prometheus``; .ci/run installs it): these tests
skip locally without it and fail under CI. The dashboard's and the autoscaler's queries are parsed by
promtool too (as recording rules), so Prometheus itself, not only promql-parser, accepts them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.support.infra import dashboard_queries, keda_queries
from tests.support.promql import grafana_to_promql
from tests.support.services import REPO_ROOT, require

PROMETHEUS = REPO_ROOT / "infra" / "prometheus"
RULES = PROMETHEUS / "rules.yml"
TESTS = PROMETHEUS / "tests.yml"
SEVERITIES = {"warning", "critical"}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    path = shutil.which("promtool")
    require(path is not None, "promtool is not installed (Debian: apt-get install prometheus)")
    assert path is not None
    return subprocess.run([path, *args], capture_output=True, text=True, timeout=120, check=False)


def _alerts() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_the_rules_are_valid() -> None:
    result = _promtool("check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in result.stdout


def test_every_alert_fires_and_stays_quiet_on_synthetic_series() -> None:
    result = _promtool("test", "rules", str(TESTS))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_scrape_config_is_valid_and_loads_the_rules() -> None:
    result = _promtool("check", "config", str(PROMETHEUS / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_alerts())} rules found" in result.stdout  # rules.yml, beside the config


def test_prometheus_parses_every_dashboard_and_autoscaler_query(tmp_path: Path) -> None:
    queries = dashboard_queries() + keda_queries()
    rules = [
        {"record": f"trainfarm_check:query_{i}", "expr": grafana_to_promql(expr)}
        for i, (_, expr) in enumerate(queries)
    ]
    path = tmp_path / "queries.yml"
    path.write_text(json.dumps({"groups": [{"name": "queries", "rules": rules}]}))  # JSON is YAML
    result = _promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules)} rules found" in result.stdout


def test_every_alert_has_a_severity_a_summary_and_a_description() -> None:
    alerts = _alerts()
    assert len({a["alert"] for a in alerts}) == len(alerts) >= 8
    for alert in alerts:
        assert alert["labels"]["severity"] in SEVERITIES, alert["alert"]
        assert {"summary", "description"} <= set(alert["annotations"]), alert["alert"]
        assert alert.get("for"), f"{alert['alert']} fires on a single evaluation"


def test_every_alert_is_tested_firing_and_quiet() -> None:
    """Each alert has a promtool case where it fires and one where it does not (a market or a bot that
    should not fire is in the same series as the one that does)."""
    cases = [case for test in yaml.safe_load(TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    for alert in _alerts():
        mine = [case for case in cases if case["alertname"] == alert["alert"]]
        assert any(case["exp_alerts"] for case in mine), f"{alert['alert']} is never tested firing"
        assert any(not case["exp_alerts"] for case in mine), f"{alert['alert']} is never tested quiet"
    assert {case["alertname"] for case in cases} == {a["alert"] for a in _alerts()}
