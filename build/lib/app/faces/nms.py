"""Non-maximum suppression, shared by the network detectors."""

from __future__ import annotations

import numpy as np


def suppress(rows: np.ndarray, iou: float, nested: float) -> list[int]:
    """Non-maximum suppression over rows (confidence, x0, y0, x1, y1), surest first: a box is
    dropped when it overlaps a kept box by more than `iou`, or lies inside it by more than `nested`
    of its own area."""
    area = (rows[:, 3] - rows[:, 1]) * (rows[:, 4] - rows[:, 2])
    kept: list[int] = []
    for i in np.argsort(-rows[:, 0], kind="stable"):
        ok = True
        for j in kept:
            iw = min(rows[i, 3], rows[j, 3]) - max(rows[i, 1], rows[j, 1])
            ih = min(rows[i, 4], rows[j, 4]) - max(rows[i, 2], rows[j, 2])
            inter = max(0.0, iw) * max(0.0, ih)
            if inter > iou * (area[i] + area[j] - inter) or inter > nested * area[i]:
                ok = False
                break
        if ok:
            kept.append(int(i))
    return kept
