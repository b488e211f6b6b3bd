"""Debian's Chromium under Selenium, headless: the page's tests and its screenshot drive it."""

from __future__ import annotations

from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"  # Debian's (scripts/test.sh installs them)


def headless_chromium(profile: Path, flags: tuple[str, ...] = ()) -> webdriver.Chrome:
    """Debian's Chromium, headless, with a fresh profile in `profile` and any extra `flags` (a fake
    camera): the page's tests use it too."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        "--window-size=1200,1000",
        *flags,
    ):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=DriverService(executable_path=CHROMEDRIVER))
