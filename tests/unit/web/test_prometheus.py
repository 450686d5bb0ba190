"""The collector's families that the alert rules, the dashboard and the autoscaler read (web/prometheus.py),
scraped from the real dashboard app on a real registry and a real (embedded) Redis.

The queue depth is checked against real Celery messages: tasks sent through the farm's own app at every
priority, with no worker taking them, land in the lists kombu names for the priority steps, and the
metric counts them all, where the length of the bare list (all that KEDA's Redis list scaler reads) does not.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tests.support.packs import farm_settings
from tests.support.scrape import families, scrape
from trainfarm.shared.connections import EmbeddedRedis, embedded_redis, redis_client
from trainfarm.shared.registry import Registry, dispose_engine, utc_now
from trainfarm.shared.settings import FarmSettings
from trainfarm.web.history import gate_verdict
from trainfarm.workers.routing import QUEUES, TRAIN_BASE

#: A farm whose cadences and bot silence limit differ from the defaults, to see them followed.
CONFIG = """
[universe]
symbols = ["BTC_USDT", "ETH_USDT"]
timeframes = ["1h", "24h"]
[timeframes.1h]
cadence = "2h"
meta_cadence = "30m"
[alerts]
stale_bot_after = "5m"
"""


def _values(text: str, family: str, *labels: str) -> dict[tuple[str, ...], float]:
    return {tuple(s.labels[k] for k in labels): s.value for s in families(text)[family].samples}


def test_the_limits_and_run_times_follow_the_config_and_the_registry(tmp_path: Path) -> None:
    with farm_settings(tmp_path / "home", CONFIG) as settings:
        server = embedded_redis(settings)
        server.ensure_running()
        try:
            registry = Registry.open(settings.database)
            three_hours_ago = Registry.open(settings.database, clock=lambda: utc_now() - timedelta(hours=3))
            under_way = three_hours_ago.runs.create("BTC_USDT", "1h", "schedule")
            ended = registry.runs.create("ETH_USDT", "1h", "schedule")
            registry.runs.fail(ended.id, "broke")
            registry.runs.create("SYN_USDT", "1h", "cli")  # outside the universe: no fan-out watches it
            text = scrape(settings)
        finally:
            server.stop()
            dispose_engine(settings.database)
    cadence = _values(text, "trainfarm_cadence_seconds", "timeframe", "kind")
    assert cadence == {("1h", "full"): 7200, ("1h", "meta"): 1800, ("24h", "full"): 604800}  # 24h meta: off
    assert _values(text, "trainfarm_stale_bot_after_seconds") == {(): 300}
    ages = _values(text, "trainfarm_active_run_age_seconds", "symbol", "timeframe", "kind")
    # SYN's run is under way too, and was created just now.
    assert set(ages) == {("BTC_USDT", "1h", "full"), ("SYN_USDT", "1h", "full")}
    assert 3 * 3600 <= ages[("BTC_USDT", "1h", "full")] < 3 * 3600 + 600
    newest = _values(text, "trainfarm_last_run_timestamp_seconds", "symbol", "timeframe", "kind")
    assert newest[("BTC_USDT", "1h", "full")] == under_way.created_at.timestamp()
    assert newest[("ETH_USDT", "1h", "full")] == ended.created_at.timestamp()
    assert set(newest) == {("BTC_USDT", "1h", "full"), ("ETH_USDT", "1h", "full")}
    runs = _values(text, "trainfarm_runs", "timeframe", "kind", "status")
    # Every status of every universe timeframe from 0, so that delta() sees a first failure.
    assert len(runs) == 2 * 2 * 6 and runs[("24h", "meta", "failed")] == 0
    assert runs[("1h", "full", "failed")] == 1 and runs[("1h", "full", "queued")] == 2


def test_the_queue_depth_counts_every_priority_list_celery_fills(
    settings: FarmSettings, server: EmbeddedRedis
) -> None:
    from trainfarm.workers.celery_app import app, rebind

    rebind()
    sent = {"cpu": list(range(10)), "meta": [0, 9], "gpu": [5]}
    for queue, priorities in sent.items():
        for priority in priorities:
            app.send_task(
                TRAIN_BASE, args=({"model": "lgbm_gbdt"},), queue=queue, priority=priority, ignore_result=True
            )
    client = redis_client(settings)
    try:
        keys = [str(k) for k in client.keys("*")]
        lists = {k: int(client.llen(k)) for k in keys if k.split("\x06\x16")[0] in QUEUES}
        bare = int(client.llen("cpu"))
    finally:
        client.close()
    # kombu's names: the bare list for priorities 0-2, "<queue>\x06\x16<step>" for the steps 3, 6 and 9.
    assert lists == {
        "cpu": 3,
        "cpu\x06\x163": 3,
        "cpu\x06\x166": 3,
        "cpu\x06\x169": 1,
        "meta": 1,
        "meta\x06\x169": 1,
        "gpu\x06\x163": 1,
    }
    depth = _values(scrape(settings), "trainfarm_queue_depth", "queue")
    assert depth == {("cpu",): 10, ("meta",): 2, ("gpu",): 1, ("control",): 0}
    assert bare == 3 < depth[("cpu",)]  # the bare list alone misses 7 of the 10


def test_the_gate_failures_count_a_check_as_the_history_page_reads_it(tmp_path: Path) -> None:
    """One rule for a stored report's checks, on the page and in the metric: a check not marked passed
    (``passed`` false or missing) failed; a report's own ``passed`` does not outvote its checks."""
    reports: dict[str, dict[str, object] | None] = {
        "v1": {"passed": True, "checks": [{"name": "sharpe", "passed": False}, {"name": "signals"}]},
        "v2": {
            "passed": False,
            "checks": [{"name": "sharpe", "passed": False}, {"name": "ece", "passed": True}],
        },
        "v3": None,
    }
    with farm_settings(tmp_path / "home", CONFIG) as settings:
        server = embedded_redis(settings)
        server.ensure_running()
        try:
            registry = Registry.open(settings.database)
            for name, report in reports.items():
                run = registry.runs.create("BTC_USDT", "1h", "schedule")
                registry.versions.add(
                    name, "BTC_USDT", "1h", run.id, metrics={}, path=f"/p/{name}", manifest_sha256="0" * 64,
                    gate_report=report,
                )  # fmt: skip
            text = scrape(settings)
        finally:
            server.stop()
            dispose_engine(settings.database)
    counted = _values(text, "trainfarm_gate_failures", "timeframe", "check")
    assert counted == {("1h", "sharpe"): 2, ("1h", "signals"): 1}
    by_page = [gate_verdict(report)[1] for report in reports.values()]
    assert by_page == [("sharpe", "signals"), ("sharpe",), ()]
