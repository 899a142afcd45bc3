"""Headless Chromium for the tests: open a page the project wrote, see what it loaded and what went
wrong, and take a screenshot. Debian's chromium is installed when missing and possible; otherwise
the calling test is skipped with the reason."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest


def chromium_path() -> str:
    """Debian's chromium, installed here when missing and possible, else the test is skipped."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if found := shutil.which(name):
            return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        done = subprocess.run(["apt-get", "install", "-y", "-q", "chromium"], capture_output=True, text=True,
                              timeout=900)
        if done.returncode == 0 and (found := shutil.which("chromium")):
            return found
        pytest.skip(f"Chromium is not installed and apt-get could not install it: {done.stderr[-300:]}")
    pytest.skip("Chromium is not installed (apt-get install chromium) and this user cannot install it")


def render(page_path: Path, screenshot: Path, section: str | None = None) -> dict:
    """Open ``page_path`` in headless Chromium: what failed to load, what the page said went wrong,
    how many figures it drew, how far it runs off the window sideways; a full-page screenshot
    goes to ``screenshot`` (with ``section``, a CSS selector, a screenshot of that element only)."""
    from playwright.sync_api import sync_playwright

    seen: dict = {"failed": [], "requests": [], "errors": [], "console": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("requestfailed", lambda request: seen["failed"].append(request.url))
            page.on("request", lambda request: seen["requests"].append(request.url))
            page.on("pageerror", lambda error: seen["errors"].append(str(error)))
            page.on("console", lambda message: seen["console"].append(f"{message.type}: {message.text}"))
            page.goto(page_path.resolve().as_uri(), wait_until="load")
            seen["svgs"] = page.evaluate("document.querySelectorAll('svg').length")
            seen["drawn"] = page.evaluate(
                "[...document.querySelectorAll('svg')].every(s => s.getBoundingClientRect().width > 200)")
            # How far the page is wider than the window (0: nothing runs off it sideways).
            seen["overflow"] = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth")
            if section is None:
                page.screenshot(path=str(screenshot), full_page=True)
            else:
                page.locator(section).screenshot(path=str(screenshot))
        finally:
            browser.close()
    return seen
