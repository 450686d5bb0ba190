"""The dashboard in a real headless browser: Chromium from the system's packages, driven by Playwright.

`farm web` runs as its own process on a farm whose registry holds the session's real pack as a promoted
champion. The browser logs in with the operator credentials, sees the market, follows the link to the
version page, sees the calibration plot load, and sees a second market's promotion appear on the open
grid without a reload. Screenshots are kept under the test's temporary folder (their paths are printed).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.support.markets import crown
from tests.support.packs import PACK_SYMBOL, PACK_TF, Pack, register_pack
from tests.support.services import SAMPLE_DIR, free_port, require
from tests.support.waiting import wait_until
from trainfarm.shared.connections import EmbeddedRedis
from trainfarm.shared.data.store import open_store
from trainfarm.shared.registry import PairedScore, PromotionReason, Registry
from trainfarm.shared.settings import FarmSettings
from trainfarm.shared.ui_auth import ui_credentials

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")


def _chromium() -> str:
    found = next((path for name in CHROMIUM_NAMES if (path := shutil.which(name))), None)
    require(found is not None, "no Chromium on PATH (the CI installs the system's chromium package)")
    assert found is not None
    return found


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
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FARM_")}
    env |= {"FARM_HOME": str(settings.home), "FARM_WEB_PORT": str(port)}
    # BTC's bars were imported by hand (their age is shown); ETH is synced from a folder that never got a
    # file, so its markets are held (stale_data).
    config = tmp_path / "farm.toml"
    config.write_text(
        '[universe]\nsymbols = ["BTC_USDT", "ETH_USDT"]\n'
        '[data.sources.ETH_USDT]\nkind = "folder"\nfolder = "user_data/data/binance"\n'
    )
    env["FARM_CONFIG_FILE"] = str(config)
    open_store(settings).import_file(SAMPLE_DIR / "BTC_USDT-5m.parquet", "BTC_USDT")
    log = tmp_path / "web.log"
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-c", "from trainfarm.cli.app import main; main()", "web"],
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: b"Uvicorn running" in log.read_bytes() or proc.poll() is not None,
            60,
            "farm web",
            every=0.25,
        )
        assert proc.poll() is None, log.read_text(errors="replace")
        yield Dashboard(f"http://127.0.0.1:{port}", version, registry)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def test_the_dashboard_in_chromium(dashboard: Dashboard, settings: FarmSettings, tmp_path: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = _chromium()
    creds = ui_credentials(settings)
    shots = tmp_path / "screenshots"
    shots.mkdir()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        try:
            stranger = browser.new_context()  # no credentials: refused (headless Chromium shows no prompt)
            assert stranger.request.get(dashboard.url + "/").status == 401
            context = browser.new_context(
                http_credentials={"username": creds.user, "password": creds.password},
                viewport={"width": 1400, "height": 900},
            )
            page = context.new_page()
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
        finally:
            browser.close()
    for name in ("markets.png", "challenger.png", "version.png", "bots.png"):
        assert (shots / name).read_bytes().startswith(b"\x89PNG")
    print(f"screenshots: {shots}")


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
