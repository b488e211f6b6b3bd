"""The README's picture of the page: the shipped model, face.jpg uploaded, in headless Chromium.

python scripts/screenshot_page.py [--out docs/page.png]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from selenium import webdriver
from selenium.webdriver.chrome.service import Service as DriverService
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from scripts.loadgen import start_service, stop, wait_ready  # noqa: E402

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "page.png")
    args = parser.parse_args()
    photo = REPO.parent / "shared" / "data" / "test-images" / "face.jpg"
    with tempfile.TemporaryDirectory() as tmp:
        service = start_service(REPO / "models" / "dex-mobilenet_v2", Path(tmp) / "service.log", MODEL_RUNTIME="onnx")
        browser = headless_chromium(Path(tmp) / "profile")
        try:
            wait_ready(service)
            browser.get(service.url + "/")
            browser.find_element(By.ID, "file").send_keys(str(photo))
            WebDriverWait(browser, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".face-card")) == 4)
            browser.save_screenshot(str(args.out))
            print(f"wrote {args.out}")
        finally:
            browser.quit()
            stop(service)


if __name__ == "__main__":
    main()
