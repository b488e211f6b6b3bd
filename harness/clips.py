"""Test videos: a photo filling the frame and panning slowly right, so that its faces move and
nobody leaves (the video tests and scripts/video_bench.py)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np


def panning_clip(
    path: Path, photo: Path, size: tuple[int, int] = (640, 480), seconds: int = 3, fps: int = 25, fourcc: str = "MJPG"
) -> Path:
    """Write `seconds` at `fps` of `photo` scaled to 85 % of `size`, moving 1/800 of the width a frame."""
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    base = cv2.resize(cv2.imread(str(photo)), size)
    for i in range(seconds * fps):
        m = np.float32([[0.85, 0, i * w / 800], [0, 0.85, h / 24]])
        writer.write(cv2.warpAffine(base, m, size, borderMode=cv2.BORDER_REPLICATE))
    writer.release()
    return path
