import numpy as np

from app.faces.crop import Box, CropSpec, crop_face, crop_square, crop_whole, read_rgb


def _ramp(h=100, w=120):
    y, x = np.mgrid[0:h, 0:w]
    return np.stack([x, y, np.zeros_like(x)], axis=-1).astype(np.uint8)


def test_crop_inside_the_image_is_the_exact_square():
    img = _ramp()
    out = crop_square(img, cx=60, cy=50, side=40, size=40)
    np.testing.assert_array_equal(out, img[30:70, 40:80])


def test_crop_past_the_border_replicates_edge_pixels():
    img = _ramp()
    out = crop_square(img, cx=0, cy=0, side=20, size=20)
    assert out.shape == (20, 20, 3)
    np.testing.assert_array_equal(out[:10, :10], np.broadcast_to(img[0, 0], (10, 10, 3)))


def test_crop_wholly_outside_the_image_still_returns_a_crop():
    out = crop_square(_ramp(), cx=-500, cy=-500, side=30, size=16)
    assert out.shape == (16, 16, 3)


def test_crop_face_applies_scale_and_shift():
    img = _ramp(200, 200)
    spec = CropSpec(scale=2.0, shift_x=0.25, shift_y=-0.25)
    out = crop_face(img, Box(80, 80, 40, 40), spec, size=80)
    # centre (100 + 10, 100 - 10), side 80 → x 70..150, y 50..130
    np.testing.assert_array_equal(out, img[50:130, 70:150])


def test_crop_whole_resizes_a_chip(utkface_dir):
    chip = read_rgb(str(sorted(utkface_dir.iterdir())[0]))
    assert chip.shape == (200, 200, 3)
    assert crop_whole(chip, 64).shape == (64, 64, 3)
    assert crop_whole(chip, 224).shape == (224, 224, 3)
