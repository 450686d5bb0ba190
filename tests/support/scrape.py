"""The farm's /metrics as Prometheus scrapes it: the real dashboard app, its basic auth, and a registry and
Redis in which every family the collector exports has samples (so a query that names a family which is
there but empty, or a histogram suffix that is never written, is caught).

A plain helper module (neither a test module nor a conftest).
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi.testclient import TestClient
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families
from redis.typing import EncodableT, FieldT

from tests.support.markets import crown
from tests.support.web import basic_auth
from trainfarm.shared.connections import redis_client
from trainfarm.shared.data.intervals import BarInterval
from trainfarm.shared.data.store import open_store
from trainfarm.shared.data.synthetic import random_walk_bars
from trainfarm.shared.registry import Registry, RunStatus, VersionStatus
from trainfarm.shared.settings import FarmSettings
from trainfarm.web.app import create_app
from trainfarm_client.contract import bot_key

#: The gate check the populated farm's rejected version failed.
FAILED_CHECK = "min_logloss_improvement"


def populate(settings: FarmSettings) -> None:
    """Give every family of the collector samples: a champion, a run that went through its stages and was
    rejected at the gates, a failed run, one under way, a lagging bot, a symbol's bars, a waiting task."""
    registry = Registry.open(settings.database)
    crown(registry, "BTC_USDT", "1h")
    run = registry.runs.create("ETH_USDT", "1h", "schedule")
    registry.runs.set_status(run.id, RunStatus.PREPARING)
    registry.runs.base_started(run.id, "lgbm_gbdt", "lightgbm", "cpu", "cpu@test")
    registry.runs.base_finished(run.id, "lgbm_gbdt", seconds=12.5, metrics={})
    report = {"checks": [{"name": FAILED_CHECK, "passed": False}, {"name": "min_signals", "passed": True}]}
    registry.versions.add(
        "v-rejected",
        "ETH_USDT",
        "1h",
        run.id,
        metrics={},
        path="/p/rejected",
        manifest_sha256="1" * 64,
        status=VersionStatus.REJECTED,
        gate_report=report,
    )
    failed = registry.runs.create("BTC_USDT", "5m", "schedule")
    registry.runs.fail(failed.id, "broke")
    registry.runs.claim("ETH_USDT", "5m", "schedule")
    open_store(settings).append(
        "BTC_USDT", BarInterval.M5, random_walk_bars(600, seed=1), origin="test", source="test", replace=False
    )
    client = redis_client(settings)
    try:
        seen = datetime.now(UTC).isoformat()
        fields: dict[FieldT, EncodableT] = {
            "symbol": "BTC_USDT",
            "timeframe": "1h",
            "version": "v-older",
            "seen_at": seen,
        }
        client.hset(bot_key("bot-1"), mapping=fields)
        client.lpush("cpu", "{}")
    finally:
        client.close()


def scrape(settings: FarmSettings) -> str:
    """The text of one GET /metrics of the real dashboard app, with the operator UIs' basic auth."""
    with TestClient(create_app(settings)) as client:
        response = client.get("/metrics", headers=basic_auth(settings))
    assert response.status_code == 200, response.text[:500]
    return response.text


def families(text: str) -> dict[str, Metric]:
    """The exposition's families by name (a histogram under its base name)."""
    return {f.name: f for f in text_string_to_metric_families(text)}


def sample_names(text: str) -> set[str]:
    """Every name a sample has in the exposition: what a query can select (``_bucket``, ``_sum`` and
    ``_count`` of a histogram, never its base name)."""
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


__all__ = ["FAILED_CHECK", "families", "populate", "sample_names", "scrape"]
