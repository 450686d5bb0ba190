"""The market history page through the ASGI app, on a real registry (the browser drives it in
tests/integration/web/test_browser.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from tests.support.history import HOSTILE_REASON, Seeded, SetClock, seed_history
from tests.support.web import basic_auth
from trainfarm.shared.registry import Registry
from trainfarm.shared.settings import FarmSettings
from trainfarm.web.app import create_app

HISTORY = "/markets/BTC_USDT/1h/history"


@pytest.fixture
def client(settings: FarmSettings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        client.headers.update(basic_auth(settings))
        yield client


@pytest.fixture
def seeded(settings: FarmSettings) -> Seeded:
    clock = SetClock()
    return seed_history(Registry.open(settings.database, clock=clock), clock)


def test_the_history_page_draws_its_three_charts_and_tables(client: TestClient, seeded: Seeded) -> None:
    page = client.get(HISTORY)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    for chart in ("logloss-chart", "win-rate-chart", "sharpe-chart"):
        tag = re.search(rf'<svg id="{chart}"[^>]*>', html)
        assert tag is not None and 'role="img"' in tag.group() and 'aria-label="' in tag.group()
    # One point per version, coloured by its verdict, each a link to its page.
    assert html.count('class="dot model passed"') == 9 and html.count('class="dot model failed"') == 3
    for version in seeded.versions:
        assert f'href="/versions/{version}"' in html
    # Five promotions and one rollback, drawn on each of the three charts.
    assert html.count('<g class="marker promotion">') == 15 and html.count('<g class="marker rollback">') == 3
    assert "5 promotions · 1 rollback<" in html
    assert "rolled back to v04-BTC_USDT (from v07-BTC_USDT)" in html
    # Both tables: six champion periods (newest first), twelve versions with the failed checks named.
    periods = html[html.index('<table id="periods">') : html.index('<table id="versions">')]
    assert periods.count("<tr>") == 7 and "rollback</span>" in periods
    versions = html[html.index('<table id="versions">') :]
    assert versions.count("<tr>") == 13 and "logloss_vs_prior, signals" in versions
    assert versions.index("v12-BTC_USDT") < versions.index("v01-BTC_USDT")


def test_an_operators_reason_is_shown_as_text(client: TestClient, seeded: Seeded) -> None:
    html = client.get(HISTORY).text
    assert "<script>" not in html and "alert('x')" not in html
    escaped = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; retrain by hand"
    assert escaped == HOSTILE_REASON.replace("<", "&lt;").replace(">", "&gt;").replace("'", "&#39;")
    assert html.count(escaped) == 4  # the hover texts of its three points and the versions table


def test_the_markets_and_version_pages_link_to_a_markets_history(client: TestClient, seeded: Seeded) -> None:
    assert f'href="{HISTORY}"' in client.get("/").text
    assert 'href="/markets/ETH_USDT/24h/history"' in client.get("/").text  # every cell, champion or not
    assert f'href="{HISTORY}"' in client.get(f"/versions/{seeded.versions[0]}").text


def test_a_market_without_versions_says_so(client: TestClient) -> None:
    page = client.get("/markets/ETH_USDT/12h/history")
    assert page.status_code == 200
    assert 'id="history-empty"' in page.text and "<svg" not in page.text
    assert "No version of ETH_USDT 12h yet" in page.text


def test_a_url_that_names_no_market_is_refused_with_the_reason(client: TestClient, seeded: Seeded) -> None:
    unknown = client.get("/markets/FOO_BAR/1h/history")
    assert unknown.status_code == 404 and "no market FOO_BAR 1h" in unknown.text
    bad_symbol = client.get("/markets/BTC%3Cx%3E/1h/history")
    assert bad_symbol.status_code == 400 and "invalid symbol 'BTC<x>'" in bad_symbol.text
    assert bad_symbol.headers["content-type"].startswith("text/plain")  # never rendered as HTML
    bad_timeframe = client.get("/markets/BTC_USDT/7m/history")
    assert bad_timeframe.status_code == 400 and "unknown timeframe '7m'" in bad_timeframe.text
    # Any spelling of a market is that market.
    other = client.get("/markets/btc-usdt/1H/history")
    assert other.status_code == 200 and "<h1>BTC_USDT 1h · history</h1>" in other.text


def test_the_history_needs_the_dashboards_credentials(settings: FarmSettings) -> None:
    with TestClient(create_app(settings)) as stranger:
        assert stranger.get(HISTORY).status_code == 401
        assert stranger.get(HISTORY, headers=basic_auth(settings, "wrong")).status_code == 401
