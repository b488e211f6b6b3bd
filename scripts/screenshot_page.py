"""The README's picture of the page: the shipped model, face.jpg uploaded, in headless Chromium.

python scripts/screenshot_page.py [--out docs/page.png]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from app.config import SHIPPED_MODEL
from harness.browser import headless_chromium
from harness.loadgen import REPO, start_service, stop, wait_ready
from model_training.dataset import TEST_IMAGES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "page.png")
    args = parser.parse_args()
    photo = TEST_IMAGES / "face.jpg"
    with tempfile.TemporaryDirectory() as tmp:
        service = start_service(SHIPPED_MODEL, Path(tmp) / "service.log", MODEL_RUNTIME="onnx")
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
