"""Fixtures of the model_training tests."""

import pytest

from app import imaging


@pytest.fixture(scope="module")
def photos(test_images):
    """The test photos (face.jpg, grace_hopper.bmp, cat.bmp) as RGB arrays, by file name."""
    return {p.name: imaging.decode(p.read_bytes(), 10**8) for p in sorted(test_images.iterdir()) if p.suffix != ".md"}
