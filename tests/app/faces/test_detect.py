"""Both face detectors on real photos: counts, phantoms, scores, boxes, threads, integrity."""

import json
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest

from app.faces.detection import DNN_WEIGHTS, FILES, YUNET
from app.faces.detectors import make_detector
from app.faces.dnn import DnnDetector
from app.faces.haar import HaarDetector
from app.faces.yunet import YuNetDetector
from harness.data import val_chips
from model_training.calibrate import pad_chip


@pytest.fixture(scope="module")
def dnn():
    return make_detector("dnn")


@pytest.mark.parametrize(("name", "count"), [("face.jpg", 4), ("grace_hopper.bmp", 1), ("cat.bmp", 0)])
def test_dnn_counts_the_faces_of_the_test_photos(dnn, photos, name, count):
    assert len(dnn.detect(photos[name])) == count


def test_dnn_scores_are_probabilities_and_boxes_lie_inside_largest_first(dnn, photos):
    for rgb in photos.values():
        h, w = rgb.shape[:2]
        found = dnn.detect(rgb)
        for d in found:
            assert 0.5 <= d.score <= 1
            assert d.box.x >= 0 and d.box.y >= 0 and d.box.width > 0 and d.box.height > 0
            assert d.box.x + d.box.width <= w and d.box.y + d.box.height <= h
        areas = [d.box.width * d.box.height for d in found]
        assert areas == sorted(areas, reverse=True)


def test_a_face_cut_by_the_border_is_clipped_to_the_image(dnn, photos):
    rgb = photos["grace_hopper.bmp"]
    (face,) = dnn.detect(rgb)
    cut = rgb[:, : face.box.x + face.box.width // 2]  # the right half of the face is gone
    for d in dnn.detect(cut):
        assert d.box.x + d.box.width <= cut.shape[1]


def test_one_face_chip_gives_one_box_padded_or_bare(dnn, utkface_dir):
    """The phantom case: a face filling much of the frame must not come back twice."""
    for chip in val_chips(utkface_dir, 30):
        assert len(dnn.detect(pad_chip(chip)[0])) == 1
        assert len(dnn.detect(chip)) == 1


def test_small_faces_in_a_large_photo_are_found(dnn, test_images):
    import numpy as np
    from PIL import Image

    canvas = Image.new("RGB", (1920, 1080), (118, 124, 130))
    canvas.paste(Image.open(test_images / "face.jpg"), (192, 135))  # faces of 44 to 95 px
    assert len(dnn.detect(np.asarray(canvas))) == 4


def test_one_network_per_thread_gives_the_same_answers_under_concurrency(dnn, photos):
    names = ["face.jpg", "grace_hopper.bmp", "cat.bmp"] * 8
    want = {n: dnn.detect(photos[n]) for n in set(names)}
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda n: dnn.detect(photos[n]), names))
    assert got == [want[n] for n in names]


def test_haar_is_still_there_and_thread_safe(photos):
    haar = make_detector("haar")
    assert haar.name == "haar" and isinstance(haar, HaarDetector)
    assert len(haar.detect(photos["face.jpg"])) == 4
    with ThreadPoolExecutor(4) as pool:
        counts = list(pool.map(lambda _: len(haar.detect(photos["face.jpg"])), range(8)))
    assert counts == [4] * 8


def test_unknown_detector_is_refused():
    with pytest.raises(ValueError, match="unknown detector 'yolo'"):
        make_detector("yolo")


@pytest.mark.parametrize(("detector", "file"), [(DnnDetector, DNN_WEIGHTS), (YuNetDetector, YUNET)])
def test_a_damaged_or_missing_network_file_is_refused_at_load(tmp_path, detector, file):
    shutil.copytree(FILES, tmp_path / "d")
    path = tmp_path / "d" / file
    data = bytearray(path.read_bytes())
    data[5000] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(RuntimeError, match="does not match its sha256"):
        detector(model_dir=tmp_path / "d")
    path.unlink()
    with pytest.raises(RuntimeError, match="face detector file missing"):
        detector(model_dir=tmp_path / "d")


def test_describe_names_the_files_checksum(dnn):
    described = dnn.describe()
    assert described["name"] == "dnn" and len(described["sha256"]) == 64
    json.dumps(described)


@pytest.mark.parametrize("shape", [(1, 10000), (10000, 1), (1, 1), (19, 4000), (5, 300)])
def test_strips_and_specks_find_nothing_and_do_not_fail(dnn, shape):
    import numpy as np

    assert dnn.detect(np.full((*shape, 3), 128, np.uint8)) == []
