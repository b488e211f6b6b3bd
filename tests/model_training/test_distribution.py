import numpy as np
import pytest

from model_training.distribution import expected_ages, summarize

AGES = np.arange(0, 101, dtype=np.float32)


def test_point_mass():
    p = np.zeros(101)
    p[40] = 1
    s = summarize(p, AGES)
    assert (s.age, s.std, s.low, s.high, s.mass) == (40, 0, 40, 40, 1)


def test_uniform_over_a_range_gives_central_interval():
    p = np.zeros(101)
    p[20:40] = 1 / 20
    s = summarize(p, AGES, mass=0.9)
    assert s.age == pytest.approx(29.5)
    assert s.std == pytest.approx(np.sqrt((20**2 - 1) / 12))
    assert (s.low, s.high) == (21, 38)
    assert s.mass >= 0.9


def test_interval_always_holds_at_least_the_mass():
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = rng.dirichlet(np.full(101, 0.05))
        for mass in (0.5, 0.8, 0.9, 0.95):
            s = summarize(p, AGES, mass)
            assert s.low <= s.high
            assert s.mass >= mass - 1e-6
            assert p[s.low : s.high + 1].sum() == pytest.approx(s.mass)


def test_expected_ages_is_the_dex_answer():
    p = np.random.default_rng(1).dirichlet(np.ones(101), size=5)
    np.testing.assert_allclose(expected_ages(p, AGES), [(row * AGES).sum() for row in p], rtol=1e-6)
