"""Distillation's views are fixed per face, and its targets mix label and teachers as the recipe says."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from app.faces.crop import read_rgb
from model_training import distill
from model_training.config import Augment, load_recipe, recipe_from_dict
from model_training.dataset import TEST_IMAGES, Face


def _face(sha: str) -> Face:
    return Face("face.jpg", sha, 30)


def test_a_view_is_the_same_pixels_every_time_and_views_differ():
    image = read_rgb(str(TEST_IMAGES / "face.jpg"))[:300, :300]
    augment = Augment(downscale_p=0.3, blur_p=0.2, jpeg_p=0.3, saturation=0.3)
    face = _face("ab" * 32)
    first = distill.augmented_view(image, distill.view_seed(face, 0), augment, 96)
    again = distill.augmented_view(image, distill.view_seed(face, 0), augment, 96)
    other = distill.augmented_view(image, distill.view_seed(face, 1), augment, 96)
    assert first.shape == (96, 96, 3) and first.dtype == np.uint8
    assert np.array_equal(first, again)
    assert not np.array_equal(first, other)
    assert distill.view_seed(face, 0) != distill.view_seed(_face("cd" * 32), 0)


def test_gaussian_targets_are_distributions_centred_on_the_answer():
    ages = np.arange(101, dtype=np.float32)
    rows = distill.gaussian_targets(np.array([[20.0, 55.5]]), ages, 5.0)
    assert rows.shape == (1, 2, 101)
    np.testing.assert_allclose(rows.sum(-1), 1, rtol=1e-5)
    assert rows[0, 0].argmax() == 20
    assert abs(float(rows[0, 1] @ ages) - 55.5) < 0.01


def test_distilling_recipes_are_checked():
    recipe = load_recipe("distill_mobilenet_v2_faceapi")
    assert recipe.distill_teacher and recipe.distill_weight + recipe.faceapi_weight <= 1
    base = recipe.to_dict()
    for bad in ({"distill_weight": 0.9, "faceapi_weight": 0.2}, {"distill_teacher": ""}, {"sampling": "balanced"}):
        with pytest.raises(ValueError):
            recipe_from_dict({**base, **bad})


def test_labels_dir_depends_on_faces_teacher_and_views(tmp_path):
    teacher = Path("models/dex-mobilenet_v2")
    faces = [_face("ab" * 32), _face("cd" * 32)]
    a = distill.labels_dir(faces, Augment(), 224, teacher, tmp_path)
    assert a == distill.labels_dir(list(faces), Augment(), 224, teacher, tmp_path)
    assert a != distill.labels_dir(faces[:1], Augment(), 224, teacher, tmp_path)
    assert a != distill.labels_dir(faces, replace(Augment(), flip=False), 224, teacher, tmp_path)
