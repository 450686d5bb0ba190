"""The queries in infra/: every Grafana panel target and template variable, every Prometheus rule, every
KEDA prometheus trigger, as (where, PromQL) pairs, for the tests that check them (parsed, against a real
scrape, by promtool).

A plain helper module (neither a test module nor a conftest).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import yaml

from tests.support.services import REPO_ROOT

DASHBOARDS = REPO_ROOT / "infra" / "grafana" / "dashboards"
RULES = REPO_ROOT / "infra" / "prometheus" / "rules.yml"
SCALED_OBJECTS = REPO_ROOT / "infra" / "k8s" / "worker-cpu-scaledobject.yaml"

#: Grafana's ``label_values(metric, label)`` (a template variable's query).
_LABEL_VALUES = re.compile(r"^label_values\((?P<metric>[a-zA-Z_:][a-zA-Z0-9_:]*)\s*,\s*\w+\)$")


def dashboard_queries() -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target and template variable of every provisioned dashboard."""
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in all_panels(dashboard["panels"]):
            for target in panel.get("targets", []):
                out.append((f"{path.name} panel {panel['title']!r} {target['refId']}", target["expr"]))
        for variable in dashboard.get("templating", {}).get("list", []):
            if variable.get("type") == "query":
                match = _LABEL_VALUES.match(variable["definition"])
                assert match, f"{path.name} variable {variable['name']}: not label_values(metric, label)"
                out.append((f"{path.name} variable {variable['name']}", match["metric"]))
    return out


def rule_queries() -> list[tuple[str, str]]:
    """(alert, PromQL) of every rule of rules.yml."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [(rule.get("alert") or rule["record"], rule["expr"]) for g in groups for rule in g["rules"]]


def keda_queries() -> list[tuple[str, str]]:
    """(scaled object, PromQL) of every prometheus trigger in infra/k8s."""
    out = []
    for doc in yaml.safe_load_all(SCALED_OBJECTS.read_text()):
        for trigger in doc["spec"]["triggers"]:
            if trigger["type"] == "prometheus":
                out.append((doc["metadata"]["name"], trigger["metadata"]["query"]))
    return out


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Every panel of ``panels``, and those inside rows (a collapsed row holds its panels)."""
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


__all__ = [
    "DASHBOARDS",
    "RULES",
    "SCALED_OBJECTS",
    "all_panels",
    "dashboard_queries",
    "keda_queries",
    "rule_queries",
]
