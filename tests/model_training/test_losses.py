import numpy as np
import pytest
import tensorflow as tf

from model_training.dataset import Face
from model_training.losses import L1WithGroupBias, age_mae
from model_training.pipeline import adult_groups, bias_groups


def test_adult_groups_count_only_adults_of_a_known_ethnicity():
    faces = [
        Face("a", "", 35, gender="male", ethnicity="Black"),
        Face("b", "", 25, gender="male", ethnicity="Black"),  # not an adult of 30–69
        Face("c", "", 69, gender="female", ethnicity="Indian"),
        Face("d", "", 40, gender="female"),
    ]
    assert adult_groups(faces).tolist() == [1, -1, 3, -1]


def test_group_term_penalises_a_group_made_younger_on_average_not_errors_that_cancel():
    loss = L1WithGroupBias(l1_weight=0.5, group_weight=2.0, groups=5)
    age = np.array([40.0, 50.0, 40.0, 50.0, 20.0, 60.0])
    group = np.array([0, 0, 1, 1, -1, -1], "float32")  # White adults, Black adults, two not counted
    y_true = tf.constant(np.stack([age, group], axis=1), tf.float32)
    cancelling = tf.constant(age + [3, -3, 2, -2, 9, -9], tf.float32)  # each group's errors cancel
    assert float(loss(y_true, cancelling)) == pytest.approx(0.5 * np.mean([3, 3, 2, 2, 9, 9]))

    younger = tf.Variable(age + [1, 1, -4, -4, 0, 0], dtype=tf.float32)  # Black adults 4 years younger
    with tf.GradientTape() as tape:
        value = loss(y_true, younger)
    # 0.5 · mean |err| + 2 · (2/6 · 1² + 2/6 · 4²)
    assert float(value) == pytest.approx(0.5 * 10 / 6 + 2 * (2 / 6 + 2 / 6 * 16), rel=1e-5)
    # d/d answer_i = (0.5 · sign(err_i) + 2 · 2 · e_g) / 6: the Black adults' answers are pushed up
    # hard, the White ones down a little, the faces not counted only by the L1 (here none)
    grad = tape.gradient(value, younger).numpy()
    np.testing.assert_allclose(grad, [0.75, 0.75, -2.75, -2.75, 0, 0], atol=1e-5)
    np.testing.assert_allclose(age_mae(y_true, younger).numpy(), [1, 1, 4, 4, 0, 0])


def test_adult_groups_by_ethnicity_and_gender_keep_aaf_as_its_own_cells():
    faces = [
        Face("a", "", 35, gender="male", ethnicity="Black", source="utkface"),
        Face("b", "", 44, gender="female", ethnicity="mostly Asian", source="aaf"),
        Face("c", "", 50, gender="male", ethnicity="mostly Asian", source="aaf"),
        Face("d", "", 12, gender="female", ethnicity="mostly Asian", source="aaf"),
    ]
    cells = bias_groups("ethnicity_gender")
    assert len(cells) == 12 and len(set(cells)) == 12
    got = adult_groups(faces, "ethnicity_gender").tolist()
    want = ["Black male", "mostly Asian female", "mostly Asian male", None]
    assert [cells[i] if i >= 0 else None for i in got] == want
    assert adult_groups(faces).tolist() == [1, 5, 5, -1]  # by ethnicity: AAF's whole set is one cell
