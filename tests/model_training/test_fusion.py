"""Fusing one person's frames: one frame as it is, the plain product at ρ = 0, and a fitted ρ that
keeps the fused interval honest when frames share an error (model_training.fusion)."""

from __future__ import annotations

import numpy as np
import pytest

from model_training.distribution import summarize
from model_training.fusion import coverage, effective_frames, fit_correlation, fuse

AGES = np.arange(101, dtype=np.float64)


def gaussian(mean: float, sd: float) -> np.ndarray:
    p = np.exp(-0.5 * ((AGES - mean) / sd) ** 2)
    return p / p.sum()


def test_one_frame_is_left_as_it_is_and_rho_zero_is_the_product():
    a, b = gaussian(30, 5), gaussian(40, 8)
    np.testing.assert_allclose(fuse(a[None], 0.3), a, atol=1e-12)
    product = a * b / (a * b).sum()
    np.testing.assert_allclose(fuse(np.stack([a, b]), 0.0), product, atol=1e-9)
    assert effective_frames(1, 0.5) == 1 and effective_frames(10, 0.0) == 10 and effective_frames(10, 1.0) == 1


def test_identical_frames_narrow_by_the_effective_count_and_never_at_rho_one():
    frames = np.stack([gaussian(50, 6)] * 16)
    assert summarize(fuse(frames, 1.0), AGES).std == pytest.approx(6, abs=0.05)  # no narrowing
    # 16 frames at ρ = 0.2 are worth 16 / (1 + 15 · 0.2) = 4 frames: σ / 2
    assert summarize(fuse(frames, 0.2), AGES).std == pytest.approx(3, abs=0.05)


def test_a_frame_that_gives_an_age_zero_does_not_veto_it():
    a, b = gaussian(30, 3), np.zeros(101)
    b[60] = 1.0
    fused = fuse(np.stack([a, b]), 0.0)
    assert np.all(np.isfinite(fused)) and fused.sum() == pytest.approx(1)


def test_the_fitted_correlation_recovers_a_shared_error_and_holds_ninety_percent():
    """Frames whose error is part person (shared), part frame: σ_b = 4, σ_e = 4 (ρ = 0.5), each
    frame's distribution calibrated on its own (σ = √32). The product is far too sure; the fit is not."""
    rng = np.random.default_rng(0)
    sequences, true = [], []
    for _ in range(600):
        age, shared = rng.uniform(20, 70), rng.normal(0, 4)
        n = int(rng.choice([2, 4, 8, 16]))
        sequences.append(np.stack([gaussian(age + shared + rng.normal(0, 4), np.sqrt(32)) for _ in range(n)]))
        true.append(round(age))
    true = np.array(true, np.float64)
    rho = fit_correlation(sequences, true, AGES)
    assert 0.35 <= rho <= 0.65
    assert 0.88 <= coverage(sequences, true, AGES, rho) <= 0.93
    assert coverage(sequences, true, AGES, 0.0) < 0.75  # frames taken as independent
