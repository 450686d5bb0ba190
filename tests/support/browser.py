"""The dashboard's browser tests' Chromium: the system's package, driven by Playwright, signed in as the UI.

Playwright's own browser downloads are never used (nothing may be downloaded at run time): the tests drive
the Chromium on PATH, which ``.ci/run`` installs from the system's packages. Without one, the test skips
locally and fails under CI (:func:`tests.support.services.require`).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from tests.support.services import require
from trainfarm.shared.settings import FarmSettings
from trainfarm.shared.ui_auth import ui_credentials

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, ViewportSize

__all__ = ["CHROMIUM_NAMES", "VIEWPORT", "chromium", "signed_in"]

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
#: Wide enough for the market grid and the history charts' full width.
VIEWPORT: ViewportSize = {"width": 1400, "height": 900}


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium from PATH, closed afterwards, with Playwright stopped."""
    from playwright.sync_api import sync_playwright

    path = next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)
    require(path is not None, "no Chromium on PATH (the CI installs the system's chromium package)")
    with sync_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start.
        browser = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()


def signed_in(browser: Browser, settings: FarmSettings) -> BrowserContext:
    """A browser context that sends the dashboard's operator credentials (basic auth) for ``settings``."""
    creds = ui_credentials(settings)
    return browser.new_context(
        http_credentials={"username": creds.user, "password": creds.password},
        viewport=VIEWPORT,
    )
