"""Headless Chromium for the console's end-to-end tests and bench: Debian's browser, driven by Playwright.

Playwright cannot download its own browser here, so it launches /usr/bin/chromium
(Debian package `chromium`; .ci/run installs it). The flags keep it off the network
it cannot reach and out of the sandbox it cannot create as root.
"""

from __future__ import annotations

import contextlib
import os
import shutil

CHROMIUM = os.environ.get("MESOINJECT_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def available() -> bool:
    return os.access(CHROMIUM, os.X_OK)


@contextlib.contextmanager
def launch_chromium():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            yield browser
        finally:
            browser.close()
