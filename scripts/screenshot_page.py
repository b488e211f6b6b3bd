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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "page.png")
    args = parser.parse_args()
    photo = REPO.parent / "shared" / "data" / "test-images" / "face.jpg"
    with tempfile.TemporaryDirectory() as tmp:
        service = start_service(REPO / "models" / "dex-mobilenet_v2", Path(tmp) / "service.log", MODEL_RUNTIME="onnx")
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        flags = ("--headless", "--no-sandbox", "--disable-gpu", "--window-size=1200,1000", f"--user-data-dir={tmp}")
        for flag in flags:
            options.add_argument(flag)
        browser = webdriver.Chrome(options=options, service=DriverService(executable_path="/usr/bin/chromedriver"))
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
