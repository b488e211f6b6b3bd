"""OpenCV's res10 SSD face detector: boxes and a probability."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from app.faces.detection import (
    DNN_CONFIG,
    DNN_WEIGHTS,
    FILES,
    MAX_PIXELS,
    MIN_CONFIDENCE,
    MIN_FACE,
    SHA256,
    Detection,
    checked_file,
    clip_box,
    detection_scale,
    largest_first,
    shrunk,
)
from app.faces.nms import suppress


class DnnDetector:
    """OpenCV's DNN face detector (an SSD with a ResNet-10 trunk, Caffe files in face_detector/).

    Two passes, each responsible for a range of face sizes (chosen with scripts/tune_detection.py):

    - *whole*: the image letterboxed in a square with `margin` of its long side on every side,
      resized to `whole_side`. The network returns phantom boxes (copies of a real face's box,
      displaced to the lower right or the top left) once a face spans more than about half of
      its input; with a 35 % margin no face can, so this pass finds the large faces cleanly.
    - *detail*, when it sees the image sharper than the whole pass: the image itself (aspect
      kept), scaled so that a face of `min_face` pixels spans the NET_MIN_FACE the network finds
      reliably, and to at most `max_pixels` input pixels (which bounds the time on large photos:
      there, the smallest face found grows with the photo). It keeps only boxes up to
      DETAIL_MAX_FACE of its input's short side, where no phantom arises; larger faces are the
      whole pass's, which then runs only if the detail pass saw one (at PROBE confidence).

    Boxes of both passes are merged (overlapping and nested boxes suppressed, surest first),
    clipped to the image and returned largest first; `score` is the network's probability that
    the box holds a face.
    """

    name = "dnn"
    NET_MIN_FACE = 20  # px: the smallest face the network finds reliably in its input
    DETAIL_MAX_FACE = 0.3
    PROBE = 0.2  # a detail-pass box this sure and too large for it calls for the whole pass
    NMS_IOU = 0.4
    NESTED = 0.6  # a box this much inside a surer box is a part of that face (an eye, a mouth)
    MEAN = (104.0, 177.0, 123.0)  # BGR means the network was trained with

    def __init__(
        self,
        min_confidence: float = MIN_CONFIDENCE,
        margin: float = 0.35,
        min_face: int = MIN_FACE,
        max_pixels: int = MAX_PIXELS,
        whole_side: int = 224,
        model_dir: Path = FILES,
    ) -> None:
        self.min_confidence, self.margin, self.whole_side = min_confidence, margin, whole_side
        self.min_face, self.max_pixels = min_face, max_pixels
        self._config, self._weights = (
            checked_file(Path(model_dir) / DNN_CONFIG),
            checked_file(Path(model_dir) / DNN_WEIGHTS),
        )
        self._local = threading.local()
        self._net()

    def _net(self, role: str = "whole") -> cv2.dnn.Net:
        """This thread's network for a pass: one per pass, as a change of input shape makes OpenCV
        re-plan the network's buffers (the whole pass keeps one shape)."""
        nets = getattr(self._local, "nets", None)
        if nets is None:
            nets = self._local.nets = {}
        if role not in nets:
            nets[role] = cv2.dnn.readNetFromCaffe(str(self._config), str(self._weights))
        return nets[role]

    def describe(self) -> dict:
        return {
            "name": self.name,
            "model": DNN_WEIGHTS,
            "sha256": SHA256[DNN_WEIGHTS],
            "min_confidence": self.min_confidence,
            "margin": self.margin,
            "whole_side": self.whole_side,
            "min_face": self.min_face,
            "max_pixels": self.max_pixels,
        }

    def _run(self, bgr: np.ndarray, role: str, threshold: float | None = None) -> np.ndarray:
        """Rows (confidence, x0, y0, x1, y1) in the coordinates of `bgr`, above the threshold."""
        h, w = bgr.shape[:2]
        blob = cv2.dnn.blobFromImage(bgr, 1.0, (w, h), self.MEAN, swapRB=False, crop=False)
        net = self._net(role)
        net.setInput(blob)
        out = net.forward()[0, 0]
        out = out[out[:, 2] >= (self.min_confidence if threshold is None else threshold)]
        return np.column_stack([out[:, 2], out[:, 3] * w, out[:, 4] * h, out[:, 5] * w, out[:, 6] * h])

    def _whole(self, bgr: np.ndarray, scale: float) -> np.ndarray:
        """The whole pass on `bgr`, which is the image downscaled by `scale`; boxes in image pixels."""
        h, w = bgr.shape[:2]
        n = self.whole_side
        factor = n / (max(h, w) * (1 + 2 * self.margin))
        nw, nh = max(1, round(w * factor)), max(1, round(h * factor))
        left, top = (n - nw) // 2, (n - nh) // 2
        small = cv2.resize(bgr, (nw, nh), interpolation=cv2.INTER_AREA)
        square = cv2.copyMakeBorder(small, top, n - nh - top, left, n - nw - left, cv2.BORDER_CONSTANT, value=self.MEAN)
        rows = self._run(square, "whole")
        rows[:, [1, 3]] = (rows[:, [1, 3]] - left) / factor
        rows[:, [2, 4]] = (rows[:, [2, 4]] - top) / factor
        rows[:, 1:] /= scale
        return rows

    def _detail(self, bgr: np.ndarray, scale: float) -> tuple[np.ndarray, bool]:
        """The detail pass on `bgr`, the image downscaled by `scale`: the faces too small to give
        phantoms, and whether it saw a larger one (then the whole pass is needed)."""
        h, w = bgr.shape[:2]
        rows = self._run(bgr, "detail", threshold=min(self.min_confidence, self.PROBE))
        large = np.maximum(rows[:, 3] - rows[:, 1], rows[:, 4] - rows[:, 2]) > self.DETAIL_MAX_FACE * min(h, w)
        keep = rows[~large & (rows[:, 0] >= self.min_confidence)]
        keep[:, 1:] /= scale
        return keep, bool(large.any())

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        # one downscaled copy feeds both passes: resizing a 12 MP photo costs more than a pass
        scale = detection_scale(h, w, self.NET_MIN_FACE, self.min_face, self.max_pixels)
        bgr = cv2.cvtColor(shrunk(rgb, scale), cv2.COLOR_RGB2BGR)
        whole_scale = scale * self.whole_side / (max(bgr.shape[:2]) * (1 + 2 * self.margin))
        passes, whole_needed = [], True
        # the detail pass: when it sees the image sharper than the whole pass, and a face fits in it;
        # the whole pass then runs only if the detail pass saw a face too large for it
        if scale > whole_scale and min(bgr.shape[:2]) >= self.NET_MIN_FACE:
            detail, whole_needed = self._detail(bgr, scale)
            passes.append(detail)
        if whole_needed:
            passes.append(self._whole(bgr, scale))
        rows = np.concatenate(passes)
        # a box whose centre lies outside the image is an artefact, not a face cut by the border
        cx, cy = (rows[:, 1] + rows[:, 3]) / 2, (rows[:, 2] + rows[:, 4]) / 2
        rows = rows[(cx >= 0) & (cx < w) & (cy >= 0) & (cy < h)]
        if len(rows) == 0:
            return []
        detections = []
        for i in suppress(rows, self.NMS_IOU, self.NESTED):
            box = clip_box(*rows[i, 1:], w, h)
            if box is not None:
                detections.append(Detection(box=box, score=float(rows[i, 0])))
        return largest_first(detections)
