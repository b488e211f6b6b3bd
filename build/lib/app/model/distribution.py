"""Summaries of an age distribution: one definition for evaluation and for the service."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

INTERVAL_MASS = 0.9  # the probability the service's age_interval holds, unless configured otherwise


@dataclass(frozen=True)
class AgeSummary:
    age: float
    std: float
    low: int
    high: int
    mass: float


def expected_ages(probabilities: np.ndarray, ages: np.ndarray) -> np.ndarray:
    return probabilities @ ages


def summarize(probabilities: np.ndarray, ages: np.ndarray, mass: float = INTERVAL_MASS) -> AgeSummary:
    """Expected age, its standard deviation, and the central interval holding at least `mass`.

    The interval is central (cut (1 - mass)/2 from each tail), so its ends are quantiles; the
    reported mass is what the interval really holds on the integer ages, never less than asked.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    p = p / p.sum()
    a = np.asarray(ages, dtype=np.float64)
    mean = float(p @ a)
    std = float(np.sqrt(max(float(p @ (a - mean) ** 2), 0.0)))
    cdf = np.cumsum(p)
    tail = (1.0 - mass) / 2.0
    eps = 1e-9  # a tail of exactly `tail` may be cut despite float round-off
    lo = int(np.searchsorted(cdf, tail + eps, side="right"))
    hi = int(np.searchsorted(cdf, 1.0 - tail - eps, side="left"))
    hi = min(max(hi, lo), len(a) - 1)
    return AgeSummary(age=mean, std=std, low=int(a[lo]), high=int(a[hi]), mass=float(p[lo : hi + 1].sum()))


def count_modes(probabilities: np.ndarray, relative: float = 0.2) -> np.ndarray:
    """Local maxima per distribution that reach `relative` of its peak: 1 for a smooth belief,
    several for a comb of spikes at round ages."""
    p = np.atleast_2d(np.asarray(probabilities, dtype=np.float64))
    padded = np.pad(p, ((0, 0), (1, 1)), constant_values=-1.0)
    left, mid, right = padded[:, :-2], padded[:, 1:-1], padded[:, 2:]
    peaks = (mid > left) & (mid >= right) & (mid >= relative * p.max(axis=1, keepdims=True))
    return peaks.sum(axis=1)


def smoothing_kernel(ages: np.ndarray, sigma: float, per_year: float = 0.0) -> np.ndarray | None:
    """[K, K] rows: how the probability of age i is spread over the ages (a Gaussian of σ = sigma +
    per_year · age_i, cut at the ends and renormalised, so probabilities still sum to 1); None: none.
    `p @ kernel` is the smoothed distribution."""
    if sigma <= 0 and per_year <= 0:
        return None
    a = np.asarray(ages, dtype=np.float64)
    spread = np.maximum(sigma + per_year * a, 1e-6)[:, None]
    kernel = np.exp(-0.5 * ((a[None, :] - a[:, None]) / spread) ** 2)
    return kernel / kernel.sum(axis=1, keepdims=True)


def calibrated(probabilities: np.ndarray, temperature: float, kernel: np.ndarray | None = None) -> np.ndarray:
    """What the exported model outputs: the temperature, then the smoothing (if any)."""
    scaled = with_temperature(probabilities, temperature)
    return scaled if kernel is None else scaled @ kernel


def with_temperature(probabilities: np.ndarray, temperature: float) -> np.ndarray:
    """softmax(log p / T): T > 1 widens the distributions, T < 1 sharpens them."""
    logits = np.log(np.clip(probabilities, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=-1, keepdims=True)
    e = np.exp(logits)
    return e / e.sum(axis=-1, keepdims=True)


def covered(
    probabilities: np.ndarray, true_ages: np.ndarray, ages: np.ndarray, mass: float = INTERVAL_MASS
) -> np.ndarray:
    """For each face: does the central `mass` interval of its distribution hold its true age?"""
    summaries = (summarize(p, ages, mass) for p in probabilities)
    return np.array([s.low <= t <= s.high for s, t in zip(summaries, true_ages, strict=True)])


def fit_temperature(
    probabilities: np.ndarray,
    true_ages: np.ndarray,
    ages: np.ndarray,
    mass: float = INTERVAL_MASS,
    steps: int = 30,
    kernel: np.ndarray | None = None,
) -> float:
    """The temperature at which the central `mass` interval holds the true age for `mass` of faces.

    Fitted on held-out faces, it makes the service's `age_interval` mean what it says. Coverage
    grows with the temperature, so a bisection finds it.
    """

    lo, hi = 0.25, 16.0
    for _ in range(steps):
        mid = (lo * hi) ** 0.5
        coverage = covered(calibrated(probabilities, mid, kernel), true_ages, ages, mass).mean()
        lo, hi = (mid, hi) if coverage < mass else (lo, mid)
    return round((lo * hi) ** 0.5, 4)
