import numpy as np
import pytest

from app.model.distribution import expected_ages, fit_temperature, summarize, with_temperature

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


def test_temperature_one_changes_nothing_and_larger_widens():
    p = np.exp(-0.5 * ((AGES - 40) / 3.0) ** 2)[None, :]
    p /= p.sum()
    np.testing.assert_allclose(with_temperature(p, 1.0), p, rtol=1e-5, atol=1e-10)
    assert summarize(with_temperature(p, 2.0)[0], AGES).std == pytest.approx(3.0 * np.sqrt(2), rel=0.01)


def test_fitted_temperature_makes_an_overconfident_model_honest():
    """Predictions with std 2 around an estimate that is really off by std 6: T > 1 fixes coverage."""
    rng = np.random.default_rng(3)
    true = rng.uniform(15, 85, 400)
    centre = true + rng.normal(0, 6, 400)
    p = np.exp(-0.5 * ((AGES[None, :] - centre[:, None]) / 2.0) ** 2)
    p /= p.sum(axis=1, keepdims=True)
    t = fit_temperature(p, true, AGES, 0.9)
    assert t > 1.5
    summaries = [summarize(q, AGES) for q in with_temperature(p, t)]
    covered = [s.low <= a <= s.high for s, a in zip(summaries, true, strict=True)]
    assert abs(np.mean(covered) - 0.9) < 0.03


def test_count_modes_tells_a_smooth_belief_from_a_comb():
    from app.model.distribution import count_modes

    ages = np.arange(101)
    smooth = np.exp(-0.5 * ((ages - 40) / 5) ** 2)
    comb = smooth * (1 + 4 * (ages % 5 == 0))
    tiny_bump = smooth + 0.01 * np.exp(-0.5 * ((ages - 80) / 2) ** 2)  # under 20 % of the peak
    # the comb: spikes at 35, 40, 45 reach 20 % of the peak; those at 30 and 50 (13.5 %) do not
    np.testing.assert_array_equal(count_modes(np.stack([smooth, comb, tiny_bump])), [1, 3, 1])


def test_fairness_reports_signed_error_per_group_and_adults():
    from model_training.evaluate import fairness

    true = np.array([35.0, 45.0, 50.0, 5.0])
    err = np.array([-3.0, -1.0, 2.0, 1.0])  # predicted − true
    inside = np.array([True, False, True, True])
    groups = fairness(true, err, inside, {"ethnicity": np.array(["A", "A", "B", "B"])})
    a, b = groups["ethnicity"]["A"], groups["ethnicity"]["B"]
    assert a["count"] == 2 and a["mae"] == 2 and a["signed"] == -2 and a["interval_coverage"] == 0.5
    assert a["adults"]["count"] == 2 and b["adults"]["count"] == 1 and b["adults"]["signed"] == 2
    assert set(b["bands"]) == {"0-9", "50-59"}
    # the 95 % margin of the mean: 1.96 · sample std / √n; none for a single face
    assert a["signed_margin95"] == pytest.approx(1.96 * np.std([-3.0, -1.0], ddof=1) / np.sqrt(2))
    assert b["adults"]["signed_margin95"] is None


def test_a_groups_signed_margin_holds_the_true_bias_about_95_percent_of_the_time():
    from model_training.evaluate import signed_margin

    rng = np.random.default_rng(0)
    samples = rng.normal(-1.5, 7.0, size=(2000, 120))  # 120 adults, error spread of 7 years, bias −1.5
    held = [abs(s.mean() + 1.5) <= signed_margin(s) for s in samples]
    assert 0.93 <= np.mean(held) <= 0.97


def test_output_smoothing_turns_a_comb_into_one_mode_and_keeps_the_mean():
    from app.model.distribution import calibrated, count_modes, smoothing_kernel

    assert smoothing_kernel(AGES, 0.0, 0.0) is None
    kernel = smoothing_kernel(AGES, 1.0, 0.05)
    np.testing.assert_allclose(kernel.sum(axis=1), 1, atol=1e-9)  # a distribution stays one
    smooth = np.exp(-0.5 * ((AGES - 40) / 5) ** 2)
    comb = smooth * (1 + 4 * (AGES % 5 == 0))
    comb /= comb.sum()
    smoothed = calibrated(comb[None], 1.0, kernel)[0]
    assert count_modes(comb) == 3 and count_modes(smoothed) == 1
    assert abs(expected_ages(smoothed, AGES) - expected_ages(comb, AGES)) < 0.3  # far from the ends


def test_temperature_is_fitted_through_the_smoothing():
    from app.model.distribution import calibrated, covered, smoothing_kernel

    rng = np.random.default_rng(1)
    true = rng.integers(10, 80, 400).astype(float)
    p = np.exp(-0.5 * ((AGES[None, :] - (true + rng.normal(0, 6, 400))[:, None]) / 2.0) ** 2)
    p /= p.sum(axis=1, keepdims=True)
    kernel = smoothing_kernel(AGES, 1.0, 0.05)
    t = fit_temperature(p, true, AGES, kernel=kernel)
    assert t != fit_temperature(p, true, AGES)  # the smoothing widens: a different temperature
    assert abs(covered(calibrated(p, t, kernel), true, AGES).mean() - 0.9) < 0.03
