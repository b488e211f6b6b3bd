"""The web page in real headless Chromium: upload photos, see boxes, ages and messages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from harness.browser import CHROMEDRIVER, CHROMIUM, headless_chromium
from harness.data import REPO

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


def write_y4m(path: Path, photo: Path, size: tuple[int, int] = (640, 480), frames: int = 10) -> Path:
    """A fake camera's file for Chromium (--use-file-for-fake-video-capture): YUV4MPEG2, 4:2:0."""
    import cv2

    bgr = cv2.resize(cv2.imread(str(photo)), size)
    i420 = cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420).tobytes()
    with path.open("wb") as out:
        out.write(f"YUV4MPEG2 W{size[0]} H{size[1]} F10:1 Ip A1:1 C420jpeg\n".encode())
        for _ in range(frames):
            out.write(b"FRAME\n" + i420)
    return path


@pytest.fixture(scope="module")
def camera_service(tmp_path_factory):
    """The shipped model (the tiny one's distributions are nearly flat, and fusing flat ones shows
    nothing) with a fusion correlation of 0.2, served by a real uvicorn."""
    import json
    import shutil

    from app.config import SHIPPED_MODEL
    from harness.loadgen import start_service, stop, wait_ready

    root = tmp_path_factory.mktemp("camera")
    model_dir = root / "model"
    shutil.copytree(SHIPPED_MODEL, model_dir, ignore=shutil.ignore_patterns("saved_model", "evaluation", "training"))
    card = json.loads((model_dir / "model.json").read_text())
    (model_dir / "model.json").write_text(json.dumps({**card, "fusion": {"correlation": 0.2}}))
    svc = start_service(model_dir, root / "service.log", MODEL_RUNTIME="onnx")
    try:
        wait_ready(svc)
        yield svc
    finally:
        stop(svc)


def test_webcam_mode_follows_each_person_and_narrows_their_interval(camera_service, test_images, tmp_path):
    """Chromium's fake camera plays face.jpg (four faces); the page sends frames to /predict, follows
    the faces and shows each person's answer fused by /fuse, narrower as frames come in."""
    camera = write_y4m(tmp_path / "camera.y4m", test_images / "face.jpg")
    flags = (
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}",
    )
    driver = headless_chromium(tmp_path / "profile", flags)
    try:
        driver.get(camera_service.url + "/")
        driver.find_element(By.ID, "webcam-start").click()
        wait = WebDriverWait(driver, 60)
        snapshot = (  # the cards are redrawn with every frame: read them all at once
            "return [...document.querySelectorAll('#people .person-card')].map((c) => "
            "({person: c.dataset.person, frames: +c.dataset.frames, width: c.dataset.high - c.dataset.low, "
            "text: c.textContent}))"
        )
        first = wait.until(lambda d: (cards := d.execute_script(snapshot)) and len(cards) == 4 and cards)
        before = {c["person"]: c for c in first}
        later = wait.until(
            lambda d: (cards := d.execute_script(snapshot)) and all(c["frames"] >= 6 for c in cards) and cards
        )
        assert {c["person"] for c in later} == set(before)  # the same four people, followed
        for card in later:
            was = before[card["person"]]
            assert card["frames"] > was["frames"]
            assert card["width"] < was["width"], (card, was)
            assert "worth" in card["text"] and "years" in card["text"]
        assert len(driver.find_elements(By.CSS_SELECTOR, "#live .box")) == 4
        assert "4 people in view" in driver.find_element(By.ID, "status").text
        driver.save_screenshot(str(ARTIFACTS / "page-webcam.png"))
        driver.find_element(By.ID, "webcam-stop").click()
        assert "webcam is off" in driver.find_element(By.ID, "status").text
    finally:
        driver.quit()


TRACKER_CASES = json.loads((REPO / "tests" / "data" / "tracker_cases.json").read_text())


@pytest.mark.parametrize("case", TRACKER_CASES["cases"], ids=lambda c: c["name"])
def test_the_pages_tracker_gives_the_shared_cases_answers(browser, service, case):
    """The webcam mode's tracker (JavaScript) against the same cases as app/video.py's."""
    browser.get(service.url + "/")
    ids = browser.execute_script(
        """
        tracks = []; nextId = 1;
        return arguments[0].map((frame) => follow(
          frame.boxes.map(([x, y, width, height]) => ({box: {x, y, width, height}, distribution: {probabilities: []}})),
          frame.t * 1000).map((track) => track.id));
        """,
        case["frames"],
    )
    order: dict[int, int] = {}
    assert [[order.setdefault(i, len(order)) for i in frame] for frame in ids] == case["ids"]
