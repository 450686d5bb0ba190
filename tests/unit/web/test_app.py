"""The dashboard's pages, auth and metrics through the ASGI app, on a real registry and a real Redis.

The browser test (tests/integration/web/test_browser.py) drives the same pages in Chromium; the pages of
a real pack are in tests/integration/web/test_app.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prometheus_client.core import Metric
from prometheus_client.parser import text_string_to_metric_families

from tests.support.markets import crown
from tests.support.packs import farm_settings
from tests.support.web import basic_auth
from trainfarm.shared.connections import EmbeddedRedis, embedded_redis, redis_client
from trainfarm.shared.data.intervals import BarInterval
from trainfarm.shared.data.store import open_store
from trainfarm.shared.data.synthetic import random_walk_bars
from trainfarm.shared.registry import Registry, Signal
from trainfarm.shared.settings import FarmSettings
from trainfarm.web.app import create_app
from trainfarm_client.contract import bot_key


@pytest.fixture
def web(settings: FarmSettings, server: EmbeddedRedis) -> Iterator[tuple[TestClient, Registry]]:
    registry = Registry.open(settings.database)
    with TestClient(create_app(settings)) as client:
        client.headers.update(basic_auth(settings))
        yield client, registry


def test_every_page_refuses_a_stranger_and_healthz_says_only_ok(
    settings: FarmSettings, server: EmbeddedRedis
) -> None:
    with TestClient(create_app(settings)) as client:
        for path in (
            "/",
            "/runs",
            "/bots",
            "/metrics",
            "/fragments/markets",
            "/versions/x",
            "/static/live.js",
        ):
            response = client.get(path)
            assert response.status_code == 401, path
            assert response.headers["www-authenticate"] == 'Basic realm="trainfarm"'
            assert client.get(path, headers=basic_auth(settings, "wrong")).status_code == 401
        assert client.get("/", headers={"Authorization": "Basic !!notbase64"}).status_code == 401
        health = client.get("/healthz")
        assert health.status_code == 200 and health.json() == {"status": "ok"}


def test_the_grid_shows_champions_verdicts_and_live_win_rates(
    web: tuple[TestClient, Registry], settings: FarmSettings
) -> None:
    client, registry = web
    champion = crown(registry, "BTC_USDT", "1h")
    at = datetime(2026, 1, 1, tzinfo=UTC)
    registry.outcomes.record(
        [
            Signal("bot", "BTC_USDT", "1h", champion, at + timedelta(hours=i), "up", 0.6, ret)
            for i, ret in enumerate((0.01, 0.02, -0.01, 0.03))
        ]
    )
    page = client.get("/")
    assert page.status_code == 200
    html = page.text
    assert f'href="/versions/{champion}"' in html and "75% of 4" in html
    assert 'data-live="/fragments/markets"' in html and "/static/live.js" in html
    assert html.count("no champion") == 7  # 2 symbols x 4 timeframes, one crowned
    fragment = client.get("/fragments/markets")
    assert fragment.status_code == 200 and "<html" not in fragment.text and champion in fragment.text
    assert client.get("/fragments/nope").status_code == 404


def test_runs_bots_and_a_missing_pack_are_shown(
    web: tuple[TestClient, Registry], settings: FarmSettings
) -> None:
    client, registry = web
    champion = crown(registry, "ETH_USDT", "12h")
    running, _ = registry.runs.claim("BTC_USDT", "1h", "schedule")
    redis = redis_client(settings)
    try:
        redis.hset(
            bot_key("bot-7"),
            mapping={
                "symbol": "ETH_USDT",
                "timeframe": "12h",
                "version": "old",
                "seen_at": datetime.now(UTC).isoformat(),
                "last_error": "download failed",
            },
        )
    finally:
        redis.close()
    runs = client.get("/runs").text
    assert running.id[:8] in runs and "schedule" in runs and "queued" in runs
    bots = client.get("/bots").text
    assert "bot-7" in bots and "lagging" in bots and "download failed" in bots
    version = client.get(f"/versions/{champion}")
    assert version.status_code == 200 and "pack:" in version.text  # crown() registers no real pack
    assert client.get("/versions/no-such-version").status_code == 404


def test_metrics_are_scraped_in_prometheus_format(
    web: tuple[TestClient, Registry], settings: FarmSettings
) -> None:
    client, registry = web
    crown(registry, "BTC_USDT", "1h")
    registry.runs.claim("ETH_USDT", "5m", "schedule")
    redis = redis_client(settings)
    try:
        redis.lpush("cpu", b"{}")
    finally:
        redis.close()
    response = client.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(response.text)}
    runs = {tuple(sorted(s.labels.items())): s.value for s in families["trainfarm_runs"].samples}
    assert runs[(("kind", "full"), ("status", "queued"), ("timeframe", "5m"))] == 1
    assert runs[(("kind", "full"), ("status", "succeeded"), ("timeframe", "1h"))] == 1  # crown()'s run
    depth = {s.labels["queue"]: s.value for s in families["trainfarm_queue_depth"].samples}
    assert depth["cpu"] == 1 and depth["meta"] == 0
    ages = {s.labels["symbol"]: s.value for s in families["trainfarm_champion_age_seconds"].samples}
    assert set(ages) == {"BTC_USDT"} and ages["BTC_USDT"] >= 0
    assert "trainfarm_run_duration_seconds" in families and "trainfarm_gate_failures" in families
    assert "trainfarm_bots" in families and "trainfarm_bot_lag_seconds" in families


def test_a_champion_outside_the_universe_still_has_its_cell(web: tuple[TestClient, Registry]) -> None:
    client, registry = web
    champion = crown(registry, "SYN_USDT", "1h")  # the default universe is BTC and ETH
    html = client.get("/").text
    assert 'data-market="SYN_USDT-1h"' in html and champion in html
    assert "not in the universe" in html  # SYN_USDT 5m, 12h, 24h


def test_no_page_shows_a_secret(settings: FarmSettings, server: EmbeddedRedis) -> None:
    from pydantic import SecretStr

    secret = settings.model_copy(
        update={
            "ui_password": SecretStr("ui-Secret-7"),
            "alert_webhook_url": SecretStr("https://hooks.example.com/T0KEN-123"),
            "smtp_password": SecretStr("smtp-Secret-9"),
        }
    )
    crown(Registry.open(settings.database), "BTC_USDT", "1h")
    with TestClient(create_app(secret)) as client:
        client.headers.update(basic_auth(secret))
        pages = [client.get(p).text for p in ("/", "/runs", "/bots", "/metrics", "/fragments/markets")]
    for page in pages:
        for needle in ("ui-Secret-7", "T0KEN-123", "smtp-Secret-9"):
            assert needle not in page


def test_the_grid_and_metrics_show_each_symbols_newest_bar_and_its_holds(tmp_path: Path) -> None:
    """BTC is synced from a folder but its newest bar is years old: stale, and its markets held; ETH was
    imported by hand: its age is shown, nothing is held."""
    config = (
        '[universe]\nsymbols = ["BTC_USDT", "ETH_USDT"]\ntimeframes = ["1h"]\n'
        '[data.sources.BTC_USDT]\nkind = "folder"\nfolder = "user_data/data/binance"\n'
    )
    with farm_settings(tmp_path / "home", config) as settings:
        embedded_redis(settings).ensure_running()
        try:
            html, families = _data_page(settings)
        finally:
            embedded_redis(settings).stop()
    assert html.count("(stale)") == 1 and "held: stale_data" in html
    stale = {s.labels["symbol"]: s.value for s in families["trainfarm_data_stale"].samples}
    assert stale == {"BTC_USDT": 1.0, "ETH_USDT": 0.0}
    ages = {s.labels["symbol"]: s.value for s in families["trainfarm_data_age_seconds"].samples}
    assert set(ages) == {"BTC_USDT", "ETH_USDT"} and ages["BTC_USDT"] > 86_400
    held = {
        (s.labels["symbol"], s.labels["flag"]): s.value for s in families["trainfarm_market_held"].samples
    }
    assert held[("BTC_USDT", "stale_data")] == 1.0 and held[("ETH_USDT", "stale_data")] == 0.0


def _data_page(settings: FarmSettings) -> tuple[str, dict[str, Metric]]:
    store = open_store(settings)
    for symbol in ("BTC_USDT", "ETH_USDT"):
        bars = random_walk_bars(600, seed=1)
        store.append(symbol, BarInterval.M5, bars, origin="test", source="test", replace=False)
    with TestClient(create_app(settings)) as client:
        client.headers.update(basic_auth(settings))
        html = client.get("/").text
        families = {f.name: f for f in text_string_to_metric_families(client.get("/metrics").text)}
    newest = families["trainfarm_data_newest_bar_close_timestamp_seconds"].samples
    assert {s.labels["symbol"]: s.value for s in newest}["BTC_USDT"] == store.newest_close(
        "BTC_USDT"
    ).timestamp()
    return html, families
