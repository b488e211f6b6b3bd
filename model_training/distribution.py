"""Summaries of an age distribution: one definition for evaluation and for the service."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class AgeSummary:
    age: float
    std: float
    low: int
    high: int
    mass: float


def expected_ages(probabilities: np.ndarray, ages: np.ndarray) -> np.ndarray:
    return probabilities @ ages


def summarize(probabilities: np.ndarray, ages: np.ndarray, mass: float = 0.9) -> AgeSummary:
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
