"""Headless Chromium for the tests (the ``browser`` fixture) and the benchmarks: one way to start it, page helpers."""

from __future__ import annotations

from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait


def chromium(profile: Path | str) -> webdriver.Chrome:
    """Headless Chromium driven by chromedriver, with a fresh profile and no background traffic."""
    opts = Options()
    opts.binary_location = "/usr/bin/chromium"
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
    driver.set_page_load_timeout(60)
    return driver


# The contact sheet (tagger.sheet): what its grid shows.


def visible_cards(driver) -> list[str]:
    """File names of the cards in the contact sheet's grid, in order."""
    return driver.execute_script(
        "return Array.from(document.querySelectorAll('#grid .card .name')).map(e => e.textContent)"
    )


def wait_visible_thumbs(driver) -> int:
    """Wait until every thumbnail in the viewport has decoded; return how many there are."""
    script = """
      const imgs = Array.from(document.querySelectorAll('#grid img')).filter(i => {
        const r = i.getBoundingClientRect(); return r.bottom > 0 && r.top < innerHeight; });
      return imgs.length && imgs.every(i => i.complete && i.naturalWidth > 0) ? imgs.length : 0;"""
    return WebDriverWait(driver, 10).until(lambda d: d.execute_script(script))
