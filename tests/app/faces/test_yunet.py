"""YuNet, the default detector, on real photos: counts, landmarks, the scale rule, threads, integrity."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from app.faces.detection import detection_scale
from app.faces.detectors import make_detector
from harness.data import val_chips
from model_training.calibrate import pad_chip


@pytest.fixture(scope="module")
def yunet():
    return make_detector("yunet")


def _canvas(test_images, w: int, h: int) -> np.ndarray:
    """The bench's canvases (scripts/bench.py): the test photos' faces pasted at natural size."""
    canvas = Image.new("RGB", (w, h), (118, 124, 130))
    canvas.paste(Image.open(test_images / "face.jpg"), (0, 0) if w == 640 else (w // 10, h // 8))
    if w > 640:
        canvas.paste(Image.open(test_images / "grace_hopper.bmp"), (w // 2, h // 3))
    return np.asarray(canvas)


@pytest.mark.parametrize(("name", "count"), [("face.jpg", 4), ("grace_hopper.bmp", 1), ("cat.bmp", 0)])
def test_yunet_counts_the_faces_of_the_test_photos(yunet, photos, name, count):
    assert len(yunet.detect(photos[name])) == count


@pytest.mark.parametrize(("size", "count"), [((640, 480), 4), ((1920, 1080), 5), ((4000, 3000), 5)])
def test_every_face_of_the_bench_canvases_is_found_with_its_landmarks_in_its_box(yunet, test_images, size, count):
    found = yunet.detect(_canvas(test_images, *size))
    assert len(found) == count
    for d in found:
        assert 0.5 <= d.score <= 1 and d.landmarks.shape == (5, 2)
        x, y = d.landmarks[:, 0], d.landmarks[:, 1]
        assert (x >= d.box.x).all() and (x <= d.box.x + d.box.width).all()
        assert (y >= d.box.y).all() and (y <= d.box.y + d.box.height).all()
        assert x[0] < x[1] and x[3] < x[4]  # the person's right eye and mouth corner on the image's left
        assert y[2] > y[:2].max() and y[3:].min() > y[2]  # eyes above the nose above the mouth


def test_the_photo_is_shrunk_for_the_smallest_face_wanted_within_the_pixel_budget():
    assert detection_scale(480, 640, 16, 48, 250_000) == pytest.approx(1 / 3)
    assert detection_scale(3000, 4000, 16, 48, 250_000) == pytest.approx((250_000 / 12e6) ** 0.5)
    assert detection_scale(100, 100, 16, 8, 250_000) == 1  # never enlarged


def test_one_padded_or_bare_chip_gives_one_face(yunet, utkface_dir):
    chips = val_chips(utkface_dir, 30)
    assert sum(len(yunet.detect(pad_chip(c)[0])) == 1 for c in chips) >= 29
    assert sum(len(yunet.detect(c)) == 1 for c in chips) >= 29


def test_one_network_per_thread_gives_the_same_answers_under_concurrency(yunet, photos):
    names = ["face.jpg", "grace_hopper.bmp", "cat.bmp"] * 8

    def answer(name):
        return [(d.box, d.score, d.landmarks.round(3).tolist()) for d in yunet.detect(photos[name])]

    want = {n: answer(n) for n in set(names)}
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(answer, names))
    assert got == [want[n] for n in names]


@pytest.mark.parametrize("shape", [(1, 10000), (10000, 1), (1, 1), (19, 4000), (5, 300)])
def test_strips_and_specks_find_nothing_and_do_not_fail(yunet, shape):
    assert yunet.detect(np.full((*shape, 3), 128, np.uint8)) == []


def test_a_box_of_one_flat_colour_is_never_a_face(yunet, photos):
    from app.faces.crop import Box

    faces = yunet.detect(photos["face.jpg"])
    assert faces and not any(yunet._flat(photos["face.jpg"], f.box) for f in faces)
    assert yunet._flat(np.full((19, 4000, 3), 128, np.uint8), Box(0, 4, 10, 15))  # what a flaky pass once found
