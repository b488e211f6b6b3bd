"""Fusing one person's frames: one frame as it is, the plain product at ρ = 0, and a fitted ρ that
keeps the fused interval honest when frames share an error (app.model.fusion)."""

from __future__ import annotations

import numpy as np
import pytest

from app.model.distribution import summarize
from app.model.fusion import Fusion, coverage, effective_frames, fit

AGES = np.arange(101, dtype=np.float64)


def gaussian(mean: float, sd: float) -> np.ndarray:
    p = np.exp(-0.5 * ((AGES - mean) / sd) ** 2)
    return p / p.sum()


def test_one_frame_is_left_as_it_is_and_rho_zero_is_the_product():
    a, b = gaussian(30, 5), gaussian(40, 8)
    np.testing.assert_allclose(Fusion(0.3).fuse(a[None]), a, atol=1e-12)
    product = a * b / (a * b).sum()
    np.testing.assert_allclose(Fusion(0.0).fuse(np.stack([a, b])), product, atol=1e-9)
    assert effective_frames(1, 0.5) == 1 and effective_frames(10, 0.0) == 10 and effective_frames(10, 1.0) == 1


def test_identical_frames_narrow_by_the_effective_count_and_never_at_rho_one():
    frames = np.stack([gaussian(50, 6)] * 16)
    assert summarize(Fusion(1.0).fuse(frames), AGES).std == pytest.approx(6, abs=0.05)  # no narrowing
    # 16 frames at ρ = 0.2 are worth 16 / (1 + 15 · 0.2) = 4 frames: σ / 2
    assert summarize(Fusion(0.2).fuse(frames), AGES).std == pytest.approx(3, abs=0.05)


def test_a_frame_that_gives_an_age_zero_does_not_veto_it():
    a, b = gaussian(30, 3), np.zeros(101)
    b[60] = 1.0
    fused = Fusion(0.0).fuse(np.stack([a, b]))
    assert np.all(np.isfinite(fused)) and fused.sum() == pytest.approx(1)


def _sequences(rng, people: int, frame_sd: float, shared_sd: float, said_sd: float):
    """Frames whose error is part person (shared by their frames), part frame; each frame's
    distribution a Gaussian of σ = said_sd around its answer."""
    sequences, true = [], []
    for _ in range(people):
        age, shared = rng.uniform(20, 70), rng.normal(0, shared_sd)
        n = int(rng.choice([2, 4, 8, 16]))
        sequences.append(np.stack([gaussian(age + shared + rng.normal(0, frame_sd), said_sd) for _ in range(n)]))
        true.append(round(age))
    return sequences, np.array(true, np.float64)


def test_the_fit_recovers_a_shared_error_and_holds_ninety_percent():
    """σ_b = 4 shared, σ_e = 4 per frame (ρ = 0.5), each frame calibrated on its own (σ = √32):
    no softening is needed, ρ comes out near 0.5; the product is far too sure."""
    rng = np.random.default_rng(0)
    sequences, true = _sequences(rng, 600, 4, 4, np.sqrt(32))
    frames = [f[None] for s in sequences for f in s]
    frame_true = np.repeat(true, [len(s) for s in sequences])
    fusion = fit(frames, sequences, frame_true, true, AGES)
    assert fusion.softening > 0.9 and 0.35 <= fusion.correlation <= 0.65
    assert 0.88 <= coverage(sequences, true, AGES, fusion) <= 0.93
    assert coverage(sequences, true, AGES, Fusion(0.0)) < 0.75  # frames taken as independent


def test_frames_surer_than_they_should_be_are_softened_first():
    """Frames that say σ = 3 where their error is √32: one frame's interval misses, so s < 1 widens
    it until it holds; the fused ones hold too."""
    rng = np.random.default_rng(1)
    sequences, true = _sequences(rng, 600, 4, 4, 3.0)
    frames = [f[None] for s in sequences for f in s]
    frame_true = np.repeat(true, [len(s) for s in sequences])
    assert coverage(frames, frame_true, AGES, Fusion()) < 0.7
    fusion = fit(frames, sequences, frame_true, true, AGES)
    assert fusion.softening < 0.6
    assert 0.88 <= coverage(frames, frame_true, AGES, Fusion(1.0, fusion.softening)) <= 0.93
    assert 0.88 <= coverage(sequences, true, AGES, fusion) <= 0.93
