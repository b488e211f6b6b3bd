"""One answer from many frames of one person: their age distributions fused, still calibrated.

Frames of one person are not independent: the same face, light and camera make the model err the
same way in each, so a plain product of n distributions is as sure as n strangers' photos would
make it, and its interval misses. The fused distribution is instead

    p(age) ∝ exp(n_eff · mean_t log p_t(age)),    n_eff = n / (1 + (n − 1) · ρ)

the mean of the frames' log-probabilities, sharpened as if by n_eff independent frames: the
effective number of n samples whose errors share a correlation ρ. One frame is left as it is;
ρ = 1 gives no narrowing however many frames come (the default for a model without a fitted ρ);
ρ = 0 is the plain product. ρ is fitted per model on camera-like sequences of validation faces
(`scripts/fit_fusion.py`), so that the fused 90 % interval holds the true age for 90 % of people,
and recorded in model.json as `fusion.correlation`.
"""

from __future__ import annotations

import numpy as np

from model_training.distribution import covered

DEFAULT_CORRELATION = 1.0  # a model that was not fitted: never surer than its frames on average
FLOOR = 1e-12  # a frame's probability of an age, at least: one frame's zero must not veto an age


def effective_frames(n: int, correlation: float) -> float:
    """How many independent frames n frames with error correlation ρ are worth."""
    return n / (1.0 + (n - 1) * correlation) if n > 0 else 0.0


def fuse(probabilities: np.ndarray, correlation: float) -> np.ndarray:
    """The fused distribution of frames' distributions [n, ages] (each summing to 1)."""
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 2 or len(p) == 0:
        raise ValueError(f"fuse needs distributions of shape [frames, ages], not {p.shape}")
    logits = effective_frames(len(p), correlation) * np.log(np.maximum(p, FLOOR)).mean(axis=0)
    fused = np.exp(logits - logits.max())
    return fused / fused.sum()


def coverage(
    sequences: list[np.ndarray], true_ages: np.ndarray, ages: np.ndarray, correlation: float, mass: float = 0.9
) -> float:
    """Share of sequences whose fused central interval of `mass` holds the true age."""
    fused = np.stack([fuse(s, correlation) for s in sequences])
    return float(covered(fused, np.asarray(true_ages, np.float64), ages, mass).mean())


def fit_correlation(
    sequences: list[np.ndarray], true_ages: np.ndarray, ages: np.ndarray, mass: float = 0.9, steps: int = 30
) -> float:
    """The smallest ρ in [0, 1] whose fused intervals hold the true age for at least `mass` of the
    sequences (coverage grows with ρ, as the intervals widen); 1 when even ρ = 1 falls short."""
    if coverage(sequences, true_ages, ages, 1.0, mass) < mass:
        return 1.0
    lo, hi = 0.0, 1.0
    if coverage(sequences, true_ages, ages, lo, mass) >= mass:
        return 0.0
    for _ in range(steps):  # bisection: coverage(lo) < mass <= coverage(hi)
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if coverage(sequences, true_ages, ages, mid, mass) >= mass else (mid, hi)
    return hi
