"""OpenCV's Haar cascade: boxes only."""

from __future__ import annotations

import threading

import cv2
import numpy as np

from app.faces.detection import (
    CASCADE,
    Detection,
    clip_box,
    largest_first,
)


class HaarDetector:
    """Haar frontal-face detector run on a copy downscaled to at most `max_side` pixels.

    `score` is the cascade's level weight (unbounded; larger is surer), not a probability. The
    defaults were chosen with scripts/tune_detection.py: no histogram equalisation (it lost faces
    and time), scale step 1.2 and 4 neighbours.
    """

    name = "haar"

    def __init__(
        self, max_side: int = 1024, scale_factor: float = 1.2, min_neighbors: int = 4, min_size: int = 24
    ) -> None:
        self.max_side = max_side
        self.scale_factor = scale_factor
        self.min_neighbors = min_neighbors
        self.min_size = min_size
        self._path = cv2.data.haarcascades + CASCADE
        self._local = threading.local()
        self._cascade()  # fail at construction, not at the first request, if the file is missing

    def _cascade(self) -> cv2.CascadeClassifier:
        cascade = getattr(self._local, "cascade", None)
        if cascade is None:
            cascade = cv2.CascadeClassifier(self._path)
            if cascade.empty():
                raise RuntimeError(f"cannot load Haar cascade {self._path}")
            self._local.cascade = cascade
        return cascade

    def describe(self) -> dict:
        return {"name": self.name, "cascade": CASCADE.removesuffix(".xml"), "max_side": self.max_side}

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        factor = min(1.0, self.max_side / max(h, w))
        gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
        if factor < 1.0:
            size = (max(1, round(w * factor)), max(1, round(h * factor)))  # a 1×10000 strip stays 1 px wide
            gray = cv2.resize(gray, size, interpolation=cv2.INTER_AREA)
        boxes, _, weights = self._cascade().detectMultiScale3(
            gray,
            scaleFactor=self.scale_factor,
            minNeighbors=self.min_neighbors,
            minSize=(self.min_size, self.min_size),
            outputRejectLevels=True,
        )
        detections = []
        for (x, y, bw, bh), weight in zip(np.asarray(boxes).reshape(-1, 4), np.ravel(weights), strict=False):
            box = clip_box(x / factor, y / factor, (x + bw) / factor, (y + bh) / factor, w, h)
            if box is not None:
                detections.append(Detection(box=box, score=float(weight)))
        return largest_first(detections)
