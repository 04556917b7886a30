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


def to_setup(page) -> None:
    """The console page on its set-up form (leaving a finished session's summary)."""
    page.wait_for_selector("body[data-phase]")
    if page.get_attribute("body", "data-phase") == "finished":
        page.click("#new-session")
    page.wait_for_selector("body[data-phase='setup']")


def start_program(page, program: str, count: int, volume_ul: float, *, patient: str = "P-0042",
                  operator: str = "Dr Test", lot: str = "L2611", arm: bool = True) -> None:
    """Fill the console's set-up form from a library program, adjust count and volume, start,
    prime unless the device is still primed, and arm (the page's own buttons throughout)."""
    page.select_option("#program", program)
    page.fill("#patient_ref", patient)
    page.fill("#operator", operator)
    page.fill("#lot", lot)
    page.fill("#count", str(count))
    page.fill("#volume", str(volume_ul))
    page.wait_for_selector("#start:enabled")
    page.click("#start")
    page.wait_for_selector("body[data-phase='configured'], body[data-phase='primed']")
    if page.get_attribute("body", "data-phase") == "configured":  # else still primed from the session before
        page.click("#prime")
        page.wait_for_selector("body[data-phase='primed']")
    if arm:
        page.click("#arm")
        page.wait_for_selector("body[data-phase='running']")
