"""The replay's dashboard page in headless Chromium: the five policies, the plot, the degradation table."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration.replay.conftest import Replayed
from tests.support.browser import chromium, signed_in
from tests.support.farm import Farm
from tests.support.services import free_port
from trainfarm.cli.processes import WebProcess
from trainfarm.shared.settings import get_settings


def test_the_replay_page_in_chromium(
    replay_farm: Farm, flip_replay: Replayed, tmp_path_factory: pytest.TempPathFactory
) -> None:
    shots = tmp_path_factory.mktemp("replay-page")
    port = free_port()
    web = WebProcess("replay-page", replay_farm.env | {"FARM_WEB_PORT": str(port)}, shots)
    web.start()
    url = f"http://127.0.0.1:{port}"
    try:
        with chromium() as browser:
            page = signed_in(browser, get_settings()).new_page()
            assert page.goto(url + "/replays").status == 200  # type: ignore[union-attr]
            page.locator(f'a[href="/replays/{flip_replay.id}"]').click()
            page.wait_for_url(f"**/replays/{flip_replay.id}")
            rows = page.locator("#policies tr")
            assert rows.count() == 6  # a header and the five policies
            assert [rows.nth(i).locator("td").first.inner_text() for i in range(1, 6)] == [
                "gated", "always", "static", "prior", "shadow",
            ]  # fmt: skip
            assert page.locator("#degradation tr").count() >= 3
            plot = page.locator("img.plot").first
            plot.wait_for()
            page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=plot.element_handle())
            assert plot.evaluate("img => img.naturalWidth") > 800
            page.screenshot(path=str(shots / "replay.png"), full_page=True)
            assert page.goto(url + "/replays/ffff0000").status == 404  # type: ignore[union-attr]
    finally:
        web.stop()
    assert Path(shots / "replay.png").read_bytes().startswith(b"\x89PNG")
    print(f"screenshot: {shots / 'replay.png'}")
