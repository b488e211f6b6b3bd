"""The web page in real headless Chromium: upload photos, see boxes, ages and messages."""

from __future__ import annotations

from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from scripts.screenshot_page import CHROMEDRIVER, CHROMIUM, headless_chromium
from tests.conftest import REPO

ARTIFACTS = REPO / "test-artifacts"


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    for path in (CHROMIUM, CHROMEDRIVER):
        if not Path(path).exists():
            pytest.fail(f"{path} is missing: install Debian's chromium and chromium-driver (scripts/test.sh does)")
    driver = headless_chromium(tmp_path_factory.mktemp("chromium-profile"))
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        yield driver
    finally:
        driver.quit()


def _upload(browser, service, image: Path) -> None:
    browser.get(service.url + "/")
    browser.find_element(By.ID, "file").send_keys(str(image))


def test_page_shows_four_faces_with_boxes_ages_and_charts(browser, service, test_images):
    _upload(browser, service, test_images / "face.jpg")
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".face-card")) == 4)
    boxes = browser.find_elements(By.CSS_SELECTOR, "#photo .box")
    assert len(boxes) == 4
    dots = browser.find_elements(By.CSS_SELECTOR, "#photo .landmark")  # five landmarks a face, inside its box
    assert len(dots) == 20
    rects = [b.rect for b in boxes]
    for dot in dots:
        x, y = dot.rect["x"] + dot.rect["width"] / 2, dot.rect["y"] + dot.rect["height"] / 2
        assert any(
            r["x"] - 1 <= x <= r["x"] + r["width"] + 1 and r["y"] - 1 <= y <= r["y"] + r["height"] + 1 for r in rects
        )
    labels = [b.text for b in boxes]
    assert all(label.startswith(f"#{i + 1} · ") and label.split("· ")[1].isdigit() for i, label in enumerate(labels))
    cards = browser.find_elements(By.CSS_SELECTOR, ".face-card")
    assert all("years" in c.find_element(By.TAG_NAME, "h2").text for c in cards)
    assert all(len(c.find_elements(By.CSS_SELECTOR, "svg rect")) > 100 for c in cards)  # 101 bars + interval
    assert all(c.find_elements(By.CSS_SELECTOR, "svg line.expected") for c in cards)
    assert "4 faces found" in browser.find_element(By.ID, "status").text
    browser.save_screenshot(str(ARTIFACTS / "page-four-faces.png"))


def test_page_says_no_face(browser, service, test_images):
    _upload(browser, service, test_images / "cat.bmp")
    status = WebDriverWait(browser, 60).until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#status.error")))
    assert "No face found" in status.text
    assert not browser.find_elements(By.CSS_SELECTOR, ".face-card")
    browser.save_screenshot(str(ARTIFACTS / "page-no-face.png"))


def test_page_shows_api_errors_readably(browser, service, tmp_path):
    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("these are not pixels")
    _upload(browser, service, not_an_image)
    status = WebDriverWait(browser, 60).until(ec.visibility_of_element_located((By.CSS_SELECTOR, "#status.error")))
    assert "not an image" in status.text
    browser.save_screenshot(str(ARTIFACTS / "page-not-an-image.png"))


def test_page_fits_a_phone_width_screen(browser, service, test_images):
    browser.set_window_size(390, 844)
    try:
        _upload(browser, service, test_images / "grace_hopper.bmp")
        WebDriverWait(browser, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".face-card")) == 1)
        overflow = browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0
        browser.save_screenshot(str(ARTIFACTS / "page-phone.png"))
    finally:
        browser.set_window_size(1200, 1000)


def test_page_needs_no_network(service):
    """Everything the page loads comes from the service itself: no CDN, works offline."""
    import httpx

    html = httpx.get(service.url + "/").text
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in html
