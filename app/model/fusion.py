"""One answer from many frames of one person: their age distributions fused, still calibrated.

Frames of one person are not independent: the same face, light and camera make the model err the
same way in each, so a plain product of n distributions is as sure as n strangers' photos would
make it, and its interval misses. And a camera's frame (blur, noise, compression, light) is a
harder photo than those the model's own interval was calibrated on. The fused distribution is

    p(age) ∝ exp(s · n_eff · mean_t log p_t(age)),    n_eff = n / (1 + (n − 1) · ρ)

the mean of the frames' log-probabilities, sharpened as if by n_eff independent frames (the
effective number of n samples whose errors share a correlation ρ) and softened by s ≤ 1 for what
a camera does to a frame. ρ = 0 is the plain product, ρ = 1 never narrows however many frames
come; s = 1 leaves one frame as the model answers it. Both are fitted per model on camera-like
sequences of validation faces (`scripts/fit_fusion.py`: s so that one frame's 90 % interval holds
90 % of people, then ρ so that the fused ones do) and recorded in model.json as `fusion`; a model
without them fuses with ρ = 1, s = 1.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.model.distribution import INTERVAL_MASS, covered

FLOOR = 1e-12  # a frame's probability of an age, at least: one frame's zero must not veto an age


def effective_frames(n: int, correlation: float) -> float:
    """How many independent frames n frames with error correlation ρ are worth."""
    return n / (1.0 + (n - 1) * correlation) if n > 0 else 0.0


@dataclass(frozen=True)
class Fusion:
    """A model's rule for fusing one person's frames (model.json `fusion`; see the module)."""

    correlation: float = 1.0  # ρ; 1: a model that was not fitted is never surer than its frames
    softening: float = 1.0  # s; 1: a frame as the model answers it

    @classmethod
    def from_card(cls, card: dict) -> Fusion:
        fitted = card.get("fusion", {})
        return cls(float(fitted.get("correlation", 1.0)), float(fitted.get("softening", 1.0)))

    def effective_frames(self, n: int) -> float:
        return effective_frames(n, self.correlation)

    def fuse(self, probabilities: np.ndarray) -> np.ndarray:
        """The fused distribution of frames' distributions [n, ages] (each summing to 1)."""
        p = np.asarray(probabilities, dtype=np.float64)
        if p.ndim != 2 or len(p) == 0:
            raise ValueError(f"fuse needs distributions of shape [frames, ages], not {p.shape}")
        scale = self.softening * self.effective_frames(len(p))
        logits = scale * np.log(np.maximum(p, FLOOR)).mean(axis=0)
        fused = np.exp(logits - logits.max())
        return fused / fused.sum()


def coverage(
    sequences: list[np.ndarray], true_ages: np.ndarray, ages: np.ndarray, fusion: Fusion, mass: float = INTERVAL_MASS
) -> float:
    """Share of sequences whose fused central interval of `mass` holds the true age."""
    fused = np.stack([fusion.fuse(s) for s in sequences])
    return float(covered(fused, np.asarray(true_ages, np.float64), ages, mass).mean())


def _bisect(ok, lo: float, hi: float, steps: int = 30) -> float:
    """The smallest x in [lo, hi] with ok(x), for ok false below some point and true above it."""
    if not ok(hi):
        return hi
    if ok(lo):
        return lo
    for _ in range(steps):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if ok(mid) else (mid, hi)
    return hi


def fit(
    frames: list[np.ndarray], sequences: list[np.ndarray], true_frames: np.ndarray, true_sequences: np.ndarray,
    ages: np.ndarray, mass: float = INTERVAL_MASS,
) -> Fusion:  # fmt: skip
    """s: the largest softening ≤ 1 whose one-frame intervals hold the true age for `mass` of
    `frames` (each [1, ages]); then ρ: the smallest in [0, 1] whose fused intervals of `sequences`
    do (coverage grows as s falls and as ρ rises; s stays 1 when one frame already holds it)."""
    softening = 1.0 - _bisect(
        lambda x: coverage(frames, true_frames, ages, Fusion(1.0, 1.0 - x), mass) >= mass, 0.0, 0.95
    )
    correlation = _bisect(
        lambda r: coverage(sequences, true_sequences, ages, Fusion(r, softening), mass) >= mass, 0.0, 1.0
    )
    return Fusion(correlation, softening)
