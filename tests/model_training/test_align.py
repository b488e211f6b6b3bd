"""The landmark alignment (crop.align_face) and its template, measured on the training chips."""

import cv2
import numpy as np
import pytest

from app import imaging
from app.faces.crop import Box, CropSpec, Template, align_face, crop_detection, crop_face, similarity
from app.faces.detectors import make_detector
from harness.data import val_chips
from model_training import calibrate
from model_training.aligned import align_image, load_template

SIZE = 224


@pytest.fixture(scope="module")
def yunet():
    return make_detector("yunet")


@pytest.fixture(scope="module")
def template() -> Template:
    return load_template()


@pytest.fixture(scope="module")
def hopper(test_images) -> np.ndarray:
    return imaging.decode((test_images / "grace_hopper.bmp").read_bytes(), 10**8)


def test_similarity_recovers_a_rotation_scale_and_shift():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 2))
    angle, scale, shift = np.radians(20), 1.7, np.array([12.0, -30.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = similarity(src, src @ rotation.T + shift)
    np.testing.assert_allclose(matrix, np.column_stack([rotation, shift]), atol=1e-9)
    with pytest.raises(ValueError, match="coincide"):
        similarity(np.ones((5, 2)), src)


def test_the_template_is_level_and_symmetric(template):
    p = np.array(template.points)
    assert p[0, 1] == pytest.approx(p[1, 1]) and p[3, 1] == pytest.approx(p[4, 1])
    centre = p[:, 0].mean()
    assert p[0, 0] + p[1, 0] == pytest.approx(2 * centre, abs=1e-3) and p[2, 0] == pytest.approx(centre, abs=1e-3)
    assert p[0, 1] < p[2, 1] < p[3, 1]  # eyes, nose, mouth from top to bottom


def test_the_template_maps_onto_itself_and_the_chips_landmarks_onto_it(yunet, template, utkface_dir):
    """Round trip: a chip whose landmarks are the template's is only resized; and training chips,
    aligned, have their landmarks (found again by YuNet) where the template puts them: on average
    exactly, face by face within the spread of the chips' own points around it (0.023–0.033)."""
    points = np.array(template.points)
    np.testing.assert_allclose(similarity(points * 200, points * SIZE), [[1.12, 0, 0], [0, 1.12, 0]], atol=1e-9)
    found = []
    for chip in val_chips(utkface_dir, 30):
        aligned = align_image(chip, yunet, template, SIZE)
        assert aligned is not None and aligned.shape == (SIZE, SIZE, 3)
        found.append(calibrate.measure_chip(aligned, yunet).reshape(5, 2))
    found = np.array(found)
    offset = np.abs(np.median(found, axis=0) - points)  # as fractions of the crop's side
    assert offset[[0, 1, 3, 4]].max() < 0.01  # eyes and mouth corners: within 2 px at 224
    assert offset[2].max() < 0.03  # the nose tip moves across the face as the head turns
    assert np.median(np.linalg.norm(found - points, axis=2)) < 0.03


def _tilt(detector, image: np.ndarray) -> float:
    """The eye line's angle in degrees (positive: the left eye lower)."""
    (face,) = detector.detect(calibrate.pad_chip(image)[0])
    (x0, y0), (x1, y1) = face.landmarks[:2]
    return float(np.degrees(np.arctan2(y1 - y0, x1 - x0)))


def test_a_face_rotated_by_20_degrees_gives_nearly_the_upright_crop(yunet, template, hopper):
    (upright,) = yunet.detect(hopper)
    want = align_face(hopper, upright.landmarks, template, SIZE)
    h, w = hopper.shape[:2]
    centre = (upright.box.x + upright.box.width / 2, upright.box.y + upright.box.height / 2)
    for angle in (20, -20):
        tilted = cv2.warpAffine(
            hopper, cv2.getRotationMatrix2D(centre, angle, 1), (w, h), borderMode=cv2.BORDER_REPLICATE
        )
        (face,) = yunet.detect(tilted)
        got = align_face(tilted, face.landmarks, template, SIZE)
        box_crop = crop_face(tilted, face.box, CropSpec(1.0), SIZE)  # a box crop keeps the tilt
        # (YuNet reads a tilt low: 20° comes out as 11–16°)
        assert abs(_tilt(yunet, got) - _tilt(yunet, want)) < 5
        assert abs(_tilt(yunet, box_crop) - _tilt(yunet, want)) > 8

        def coarse(rgb):  # the face's layout, not its texture
            return cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (28, 28), interpolation=cv2.INTER_AREA) / 1.0

        upright_box = crop_face(hopper, upright.box, CropSpec(1.0), SIZE)
        assert np.abs(coarse(got) - coarse(want)).mean() < 0.9 * np.abs(coarse(box_crop) - coarse(upright_box)).mean()


def test_a_large_face_is_shrunk_without_aliasing_to_the_same_crop(yunet, template, hopper):
    (small,) = yunet.detect(hopper)
    big = cv2.resize(hopper, None, fx=4, fy=4, interpolation=cv2.INTER_CUBIC)
    got = align_face(big, small.landmarks * 4 + 1.5, template, SIZE).astype(np.float64)  # pixel centres scale so
    want = align_face(hopper, small.landmarks, template, SIZE).astype(np.float64)
    assert np.abs(got - want).mean() < 4


def test_a_template_needs_landmarks(template, hopper):
    with pytest.raises(ValueError, match="needs a detector that gives landmarks"):
        crop_detection(hopper, Box(0, 0, 100, 100), None, template, SIZE)
    assert crop_detection(hopper, Box(0, 0, 100, 100), None, CropSpec(), SIZE).shape == (SIZE, SIZE, 3)
