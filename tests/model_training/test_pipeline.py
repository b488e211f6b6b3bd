"""Training targets and sampling (model_training.pipeline)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from model_training.dataset import Face


def test_label_distributions_one_hot_or_gaussian_widening_with_age(tiny_recipe):
    from model_training.pipeline import label_distributions

    np.testing.assert_array_equal(label_distributions(tiny_recipe), np.eye(101, dtype=np.float32))
    ldl = label_distributions(replace(tiny_recipe, loss="ldl", ldl_sigma=2.0, ldl_sigma_per_year=0.05))
    np.testing.assert_allclose(ldl.sum(axis=1), 1, atol=1e-5)
    assert all(int(np.argmax(ldl[a])) == a for a in range(101))
    assert ldl[80].max() < ldl[10].max()  # σ = 6 at 80 years, 2.5 at 10: the older target is wider


def test_balanced_weights_even_the_cells_within_the_cap():
    from model_training.pipeline import balanced_weights

    faces = [Face(f"w{i}", "", 25, "train", "male", "White") for i in range(300)]
    faces += [Face(f"b{i}", "", 65, "train", "female", "Black") for i in range(10)]
    faces += [Face(f"a{i}", "", 45, "train", "male", "Asian") for i in range(100)]
    p = balanced_weights(faces, cap=4.0)
    assert p.sum() == pytest.approx(1)
    ratio = p * len(faces)  # how often a face is drawn, relative to plain sampling
    assert ratio.max() <= 4.0 + 1e-9 and ratio[:300].max() < 1 < ratio[300:].min()
    shares = [p[:300].sum(), p[300:310].sum(), p[310:].sum()]
    assert max(shares) - min(shares) < 300 / 410 - 10 / 410  # closer to even than plain sampling


def test_balanced_sampling_by_gender_too_evens_women_and_men_of_one_group():
    from model_training.pipeline import balanced_weights

    faces = [Face(f"m{i}", "", 45, "train", "male", "Asian") for i in range(90)]
    faces += [Face(f"f{i}", "", 45, "train", "female", "Asian") for i in range(30)]
    faces += [Face(f"w{i}", "", 25, "train", "female", "White") for i in range(120)]
    women = slice(90, 120)
    assert balanced_weights(faces, cap=4.0)[women].sum() == pytest.approx(30 / 240)  # one cell: as plain
    by_gender = balanced_weights(faces, cap=4.0, by=("ethnicity", "gender"))
    assert by_gender[women].sum() == pytest.approx(by_gender[:90].sum())  # Asian women as often as men
