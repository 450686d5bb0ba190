"""The dashboard in a real headless browser: Chromium from the system's packages, driven by Playwright.

`farm web` runs as its own process on a farm whose registry holds the session's real pack as a promoted
champion. The browser logs in with the operator credentials, sees the market, follows the link to the
version page, sees the calibration plot load, and sees a second market's promotion appear on the open
grid without a reload. A market's history page (its three charts) is reached from the grid on a farm of its
own. Screenshots are kept under the test's temporary folder (their paths are printed).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.support.browser import chromium, signed_in
from tests.support.history import SetClock, seed_history
from tests.support.markets import crown
from tests.support.packs import PACK_SYMBOL, PACK_TF, Pack, register_pack
from tests.support.services import SAMPLE_DIR
from tests.support.web import farm_web
from trainfarm.shared.connections import EmbeddedRedis
from trainfarm.shared.data.store import open_store
from trainfarm.shared.registry import PairedScore, PromotionReason, Registry
from trainfarm.shared.settings import FarmSettings

if TYPE_CHECKING:
    from playwright.sync_api import Dialog, Page


@dataclass(frozen=True)
class Dashboard:
    url: str
    version: str
    registry: Registry


@pytest.fixture
def dashboard(
    pack: Pack, settings: FarmSettings, server: EmbeddedRedis, tmp_path: Path
) -> Iterator[Dashboard]:
    registry = Registry.open(settings.database)
    version = register_pack(registry, pack.path, pack.manifest_sha256, "browser test")
    registry.champions.promote(version, reason=PromotionReason.MANUAL)
    # BTC's bars were imported by hand (their age is shown); ETH is synced from a folder that never got a
    # file, so its markets are held (stale_data).
    config = (
        '[universe]\nsymbols = ["BTC_USDT", "ETH_USDT"]\n'
        '[data.sources.ETH_USDT]\nkind = "folder"\nfolder = "user_data/data/binance"\n'
    )
    open_store(settings).import_file(SAMPLE_DIR / "BTC_USDT-5m.parquet", "BTC_USDT")
    with farm_web(settings, tmp_path, config) as url:
        yield Dashboard(url, version, registry)


def test_the_dashboard_in_chromium(dashboard: Dashboard, settings: FarmSettings, tmp_path: Path) -> None:
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with chromium() as browser:
        stranger = browser.new_context()  # no credentials: refused (headless Chromium shows no prompt)
        assert stranger.request.get(dashboard.url + "/").status == 401
        page = signed_in(browser, settings).new_page()
        assert page.goto(dashboard.url + "/").status == 200  # type: ignore[union-attr]
        cell = page.locator(f'[data-market="{PACK_SYMBOL}-{PACK_TF.value}"]')
        assert dashboard.version in cell.inner_text()
        assert "bars " in page.locator("tr", has_text="BTC_USDT").first.inner_text()
        held = page.locator('[data-market="ETH_USDT-1h"] .pill', has_text="held")
        assert held.inner_text() == "held: stale_data"
        page.screenshot(path=str(shots / "markets.png"), full_page=True)

        # A promotion elsewhere appears on the open page: the grid refreshes itself.
        other = crown(dashboard.registry, "ETH_USDT", "1h")
        page.wait_for_selector(f'[data-market="ETH_USDT-1h"] a[href="/versions/{other}"]', timeout=20_000)
        assert page.locator("#markets").get_attribute("data-updated")

        # A challenger of BTC 12h (shadow mode) gets its panel: version, who started it, live bars so far.
        challenger = _challenger(dashboard.registry, dashboard.version)
        panel = page.locator(f'[data-market="{PACK_SYMBOL}-{PACK_TF.value}"] .challenger')
        panel.wait_for(timeout=20_000)
        assert f"challenger {challenger}" in panel.inner_text() and "3/60 live bars" in panel.inner_text()
        assert panel.locator("progress").get_attribute("value") == "3"
        page.screenshot(path=str(shots / "challenger.png"), full_page=True)

        cell.locator("a.champion").click()
        page.wait_for_url(f"**/versions/{dashboard.version}")
        assert page.locator("#gates tr").count() > 5  # a row per gate check
        assert page.locator("#stacker-chosen").inner_text()
        plot = page.locator("img.plot").first
        plot.wait_for()
        page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=plot.element_handle())
        width = plot.evaluate("img => img.naturalWidth")
        assert width > 500  # the reliability diagram, decoded by the browser
        # What the models relied on: the features chart and the base models' permutation chart.
        assert page.locator("#feature-chart rect").count() == 15
        assert page.locator("#stacker-chart rect").count() == 8
        page.screenshot(path=str(shots / "version.png"), full_page=True)
        page.goto(dashboard.url + "/bots")
        page.screenshot(path=str(shots / "bots.png"), full_page=True)
    for name in ("markets.png", "challenger.png", "version.png", "bots.png"):
        assert (shots / name).read_bytes().startswith(b"\x89PNG")
    print(f"screenshots: {shots}")


@pytest.fixture
def history_dashboard(settings: FarmSettings, server: EmbeddedRedis, tmp_path: Path) -> Iterator[str]:
    """`farm web` on a farm whose BTC_USDT 1h has two weeks of history up to now (no pack needed: the
    history page reads the registry only)."""
    clock = SetClock()
    start = (datetime.now(UTC) - timedelta(days=13)).replace(minute=0, second=0, microsecond=0)
    seed_history(Registry.open(settings.database, clock=clock), clock, start=start)
    with farm_web(settings, tmp_path, '[universe]\nsymbols = ["BTC_USDT", "ETH_USDT"]\n') as url:
        yield url


def test_a_markets_history_in_chromium(
    history_dashboard: str, settings: FarmSettings, tmp_path: Path
) -> None:
    """From the grid to the market's history: three charts drawn with their points, lines, markers and
    period bars; nothing fetched from elsewhere; an operator's hostile reason shown, never run."""
    shots = tmp_path / "screenshots"
    shots.mkdir()
    fetched: list[str] = []
    dialogs: list[str] = []
    with chromium() as browser:
        page = signed_in(browser, settings).new_page()
        page.on("request", lambda request: fetched.append(request.url))

        def dismiss(dialog: Dialog) -> None:
            dialogs.append(dialog.message)
            dialog.dismiss()

        page.on("dialog", dismiss)
        assert page.goto(history_dashboard + "/").status == 200  # type: ignore[union-attr]
        page.locator('[data-market="BTC_USDT-1h"] a.history').click()
        page.wait_for_url("**/markets/BTC_USDT/1h/history")
        assert page.locator("h1").inner_text() == "BTC_USDT 1h · history"

        _check_history_charts(page)
        assert page.locator("#periods tr").count() == 7 and page.locator("#versions tr").count() == 13
        # The operator's reason is text in the table, and no script of it ran.
        assert "<script>alert('x')</script> retrain by hand" in page.locator("#versions").inner_text()
        page.screenshot(path=str(shots / "history.png"), full_page=True)

        page.locator("#logloss-chart circle.dot.model.failed").first.click()  # a point opens its version
        page.wait_for_url("**/versions/v03-BTC_USDT")
    assert dialogs == []
    assert fetched and all(url.startswith(history_dashboard + "/") for url in fetched), fetched
    assert (shots / "history.png").read_bytes().startswith(b"\x89PNG")
    print(f"screenshots: {shots}")


def _check_history_charts(page: Page) -> None:
    """The history page's three charts are drawn: sized, with the line, points, markers and period bars."""
    for chart in ("#logloss-chart", "#win-rate-chart", "#sharpe-chart"):
        svg = page.locator(chart)
        assert svg.get_attribute("role") == "img" and svg.get_attribute("aria-label")
        box = svg.bounding_box()
        assert box is not None and box["width"] >= 900 and box["height"] >= 150, (chart, box)
        # Promotions and the rollback drawn on each chart, at the same places.
        assert svg.locator("g.marker.promotion").count() == 5
        assert svg.locator("g.marker.rollback").count() == 1
    model = page.locator("#logloss-chart path.series.model")
    assert len(model.get_attribute("d") or "") > 100  # a line through twelve versions
    model_box = model.bounding_box()
    assert model_box is not None and model_box["width"] > 600 and model_box["height"] > 50
    assert page.locator("#logloss-chart circle.dot.model.passed").count() == 9
    failed = page.locator("#logloss-chart circle.dot.model.failed")
    assert failed.count() == 3
    assert "gates failed: sharpe" in (failed.first.locator("title").text_content() or "")
    for chart in ("#win-rate-chart", "#sharpe-chart"):
        bars = page.locator(f"{chart} g.segment line")
        assert bars.count() == 6  # one per champion period
        widths = [b["width"] for b in (bars.nth(i).bounding_box() for i in range(6)) if b is not None]
        assert len(widths) == 6 and min(widths) > 20
    assert (page.locator("#win-rate-chart g.segment text").first.text_content() or "").endswith("n=40")


def _challenger(registry: Registry, champion: str) -> str:
    """A second version of the pack's market made its challenger, with three bars scored by both."""
    run = registry.runs.create(PACK_SYMBOL, PACK_TF, "browser test")
    version = "v-challenger"
    registry.versions.add(version, PACK_SYMBOL, PACK_TF.value, run.id, metrics={}, path="/p/challenger",
                          manifest_sha256="0" * 64)  # fmt: skip
    registry.shadows.start(PACK_SYMBOL, PACK_TF.value, version, champion, started_by="manual")
    bars = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=12 * i) for i in range(3)]
    probs = (0.3, 0.4, 0.3)
    registry.shadows.record(
        [PairedScore(PACK_SYMBOL, PACK_TF.value, at, "bot", champion, version, probs, probs, None, "up")
         for at in bars]
    )  # fmt: skip
    return version
