"""infra/grafana: the provisioning Grafana reads at start (a Prometheus data source, a file provider) and a
dashboard Grafana can load: a uid and title, every panel on the provisioned data source with PromQL
targets, on the 24-column grid without overlaps, and the farm's topics covered (what the issue asked for:
runs by status, durations, queue depths, champion age against freshness, gate failures by check, bots by
version and lag). Whether each query names exported metrics: test_queries.py.
"""

from __future__ import annotations

import json
from typing import Any

import yaml

from tests.support.infra import DASHBOARDS, all_panels
from tests.support.promql import grafana_to_promql, metric_names
from tests.support.services import REPO_ROOT

PROVISIONING = REPO_ROOT / "infra" / "grafana" / "provisioning"
COMPOSE = REPO_ROOT / "docker-compose.yml"
#: What the farm's dashboard shows, each with the metrics one of its panels must read.
TOPICS = {
    "runs by status": {"trainfarm_runs"},
    "run durations": {"trainfarm_run_duration_seconds_bucket"},
    "queue waits": {"trainfarm_queue_wait_seconds_bucket"},
    "queue depths": {"trainfarm_queue_depth"},
    "champion age against freshness": {"trainfarm_champion_age_seconds", "trainfarm_freshness_limit_seconds"},
    "gate failures by check": {"trainfarm_gate_failures"},
    "bots by version": {"trainfarm_bots"},
    "bot lag": {"trainfarm_bot_lag_seconds"},
    "bot heartbeats": {"trainfarm_bot_heartbeat_age_seconds", "trainfarm_stale_bot_after_seconds"},
    "backlog against cadence": {"trainfarm_active_run_age_seconds", "trainfarm_cadence_seconds"},
}


def _datasource() -> dict[str, Any]:
    loaded = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    assert loaded["apiVersion"] == 1
    (source,) = loaded["datasources"]
    return dict(source)


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((DASHBOARDS / "trainfarm.json").read_text())
    return loaded


def _grafana_mounts() -> dict[str, str]:
    """The grafana service's bind mounts, container path -> host path."""
    volumes = yaml.safe_load(COMPOSE.read_text())["services"]["grafana"]["volumes"]
    mounts = {}
    for volume in volumes:
        host, container, *_ = volume.split(":")
        mounts[container] = host
    return mounts


def test_the_data_source_is_the_compose_prometheus() -> None:
    source = _datasource()
    assert source["type"] == "prometheus" and source["access"] == "proxy"
    assert source["uid"] and source["isDefault"] is True
    prometheus = yaml.safe_load(COMPOSE.read_text())["services"]["prometheus"]
    published = prometheus["ports"][0].rsplit(":", 1)[-1]
    assert source["url"] == f"http://prometheus:{published}"


def test_grafana_loads_the_dashboards_folder_and_the_provisioning() -> None:
    loaded = yaml.safe_load((PROVISIONING / "dashboards" / "trainfarm.yml").read_text())
    (provider,) = loaded["providers"]
    assert loaded["apiVersion"] == 1 and provider["type"] == "file"
    mounts = _grafana_mounts()
    assert mounts[provider["options"]["path"]] == "./infra/grafana/dashboards"
    assert mounts["/etc/grafana/provisioning"] == "./infra/grafana/provisioning"


def test_the_dashboard_is_well_formed_for_grafana() -> None:
    dashboard = _dashboard()
    uid = _datasource()["uid"]
    assert dashboard["uid"] == "trainfarm" and len(dashboard["uid"]) <= 40 and dashboard["title"]
    assert "id" not in dashboard  # Grafana assigns it; a provisioned file must not pin one
    assert isinstance(dashboard["schemaVersion"], int)
    panels = list(all_panels(dashboard["panels"]))
    assert len({p["id"] for p in panels}) == len(panels), "panel ids repeat"
    for panel in panels:
        if panel["type"] == "row":
            continue
        name = panel["title"]
        assert panel["datasource"] == {"type": "prometheus", "uid": uid}, name
        targets = panel["targets"]
        assert targets, f"{name} has no query"
        assert len({t["refId"] for t in targets}) == len(targets), f"{name}: refIds repeat"
        for target in targets:
            assert target["datasource"] == panel["datasource"] and target["expr"].strip(), name
    for variable in dashboard["templating"]["list"]:
        assert variable["datasource"] == {"type": "prometheus", "uid": uid}, variable["name"]


def test_the_panels_tile_the_24_column_grid_without_overlapping() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in all_panels(_dashboard()["panels"]):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]
        cells = {
            (x, y)
            for x in range(grid["x"], grid["x"] + grid["w"])
            for y in range(grid["y"], grid["y"] + grid["h"])
        }
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


def test_the_dashboard_covers_the_farms_topics() -> None:
    read = [
        set().union(*(metric_names(grafana_to_promql(t["expr"])) for t in panel.get("targets", [])))
        for panel in all_panels(_dashboard()["panels"])
    ]
    missing = [topic for topic, needed in TOPICS.items() if not any(needed <= names for names in read)]
    assert not missing, f"no panel shows: {missing}"
