"""Every query in infra/ names only what the farm exports: the Grafana dashboard's panels and variables, the
Prometheus alert rules and KEDA's autoscaling query, each parsed as PromQL (promql-parser) and held against
one real scrape of the dashboard's /metrics (the real app, its basic auth, a registry and Redis in which
every family has samples). A panel that names a family the collector never writes would stay empty.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.infra import dashboard_queries, keda_queries, rule_queries
from tests.support.packs import farm_settings
from tests.support.promql import grafana_to_promql, metric_names
from tests.support.scrape import families, populate, sample_names, scrape
from tests.support.services import REPO_ROOT
from trainfarm.shared.connections import embedded_redis

#: Series Prometheus writes itself for every scrape target (the rules watch the farm's scrape with it).
PROMETHEUS_OWN = {"up"}
#: Every family the collector exports (web/prometheus.py; docs/operations.md#watching-it lists them).
FAMILIES = {
    f"trainfarm_{name}"
    for name in (
        "runs",
        "run_duration_seconds",
        "queue_wait_seconds",
        "base_model_seconds",
        "active_run_age_seconds",
        "last_run_timestamp_seconds",
        "cadence_seconds",
        "stale_bot_after_seconds",
        "champion_age_seconds",
        "freshness_limit_seconds",
        "data_newest_bar_close_timestamp_seconds",
        "data_age_seconds",
        "data_stale",
        "market_held",
        "gate_failures",
        "queue_depth",
        "bots",
        "bot_lag_seconds",
        "bot_heartbeat_age_seconds",
    )
}


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One scrape of a populated farm with the repository's farm.toml (its text)."""
    home = tmp_path_factory.mktemp("queries") / "home"
    with farm_settings(home, (REPO_ROOT / "farm.toml").read_text()) as settings:
        server = embedded_redis(settings)
        server.ensure_running()
        try:
            populate(settings)
            yield scrape(settings)
        finally:
            server.stop()


def _unknown(queries: list[tuple[str, str]], known: set[str]) -> list[str]:
    problems = []
    for where, expr in queries:
        names = metric_names(grafana_to_promql(expr))
        if not names:
            problems.append(f"{where}: names no metric: {expr}")
        problems += [f"{where}: {name} is not exported" for name in sorted(names - known)]
    return problems


def test_every_family_the_collector_exports_has_samples_in_the_scrape(exported: str) -> None:
    """Else a query naming an empty family would pass the checks below unseen."""
    found = families(exported)
    empty = sorted(name for name, family in found.items() if not family.samples)
    assert not empty, f"families without samples in the populated scrape: {empty}"
    assert set(found) == FAMILIES


def test_every_dashboard_query_names_only_exported_metrics(exported: str) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 20
    assert not _unknown(queries, sample_names(exported))


def test_every_alert_rule_names_only_exported_metrics(exported: str) -> None:
    queries = rule_queries()
    assert len(queries) >= 8
    assert not _unknown(queries, sample_names(exported) | PROMETHEUS_OWN)


def test_the_autoscalers_query_names_only_exported_metrics(exported: str) -> None:
    queries = keda_queries()
    assert [name for name, _ in queries] == ["trainfarm-worker-cpu"]
    assert not _unknown(queries, sample_names(exported))


def test_a_histograms_base_name_is_no_sample_and_an_unknown_name_is_caught(exported: str) -> None:
    """The check itself: a histogram is queried by its suffixes only, and a typo is reported."""
    names = sample_names(exported)
    assert "trainfarm_run_duration_seconds" not in names
    assert {f"trainfarm_run_duration_seconds_{s}" for s in ("bucket", "sum", "count")} <= names
    bad = [("typo", 'sum(trainfarm_queue_dept{queue="cpu"})'), ("base", "trainfarm_queue_wait_seconds")]
    assert _unknown(bad, names) == [
        "typo: trainfarm_queue_dept is not exported",
        "base: trainfarm_queue_wait_seconds is not exported",
    ]


def test_the_parser_finds_every_selector_of_a_query() -> None:
    expr = (
        'histogram_quantile(0.9, sum by (le) (rate(a_bucket{x=~"$timeframe"}[$__rate_interval])))'
        ' / on (x) group_left {__name__="b"} > max_over_time(c[1h:5m] offset 1h) unless absent(d)'
        " or time() - e"
    )
    assert metric_names(grafana_to_promql(expr)) == {"a_bucket", "b", "c", "d", "e"}
    with pytest.raises(ValueError, match="cannot be checked"):
        metric_names('{__name__=~"trainfarm_.*"}')
