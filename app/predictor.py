"""The service's pipeline: decode → detect → crop (model_training.crop) → one batch → summaries."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app import imaging
from app.config import Settings
from model_training.crop import Box, crop_face, crop_whole
from model_training.detect import FaceDetector, make_detector
from model_training.distribution import AgeSummary, summarize
from model_training.model_dir import AgeModel


class Abandoned(Exception):
    """The client went away: the prediction was stopped."""


@dataclass(frozen=True)
class FaceResult:
    box: Box
    detection_score: float | None
    summary: AgeSummary
    probabilities: np.ndarray


@dataclass(frozen=True)
class Prediction:
    width: int
    height: int
    faces: list[FaceResult]
    timings_ms: dict[str, float]


class Predictor:
    def __init__(
        self, model: AgeModel, detector: FaceDetector, max_pixels: int, interval_mass: float, flip: bool = False
    ) -> None:
        self.model, self.detector = model, detector
        self.crop = model.crop_for(detector.name)  # refuses a model without a crop for this detector
        self.max_pixels, self.interval_mass, self.flip = max_pixels, interval_mass, flip

    def faces(self, rgb: np.ndarray, detect: bool, max_faces: int) -> tuple[list[Box], list[float | None], float]:
        """Face boxes (largest first), their scores, and the detection time in ms."""
        start = time.perf_counter()
        if not detect:
            h, w = rgb.shape[:2]
            return [Box(0, 0, w, h)], [None], 0.0
        detections = self.detector.detect(rgb)[:max_faces]
        elapsed = (time.perf_counter() - start) * 1000
        return [d.box for d in detections], [d.score for d in detections], elapsed

    def crops(self, rgb: np.ndarray, boxes: list[Box], detect: bool) -> np.ndarray:
        size = self.model.input_size
        if not detect:
            return crop_whole(rgb, size)[None]
        return np.stack([crop_face(rgb, box, self.crop, size) for box in boxes])

    def predict(
        self, data: bytes, detect: bool = True, max_faces: int = 10, cancelled: Callable[[], bool] = lambda: False
    ) -> Prediction:
        """Decode, detect, crop, estimate. `cancelled` is asked between the stages: once it says
        True (the client has gone), the work stops with `Abandoned`."""
        try:
            return self._predict(data, detect, max_faces, cancelled)
        finally:
            imaging.release_memory()  # the decoded image is gone: give its pages back

    def _predict(self, data: bytes, detect: bool, max_faces: int, cancelled: Callable[[], bool]) -> Prediction:
        start = time.perf_counter()
        rgb = imaging.decode(data, self.max_pixels)
        decoded = time.perf_counter()
        if cancelled():
            raise Abandoned
        boxes, scores, detect_ms = self.faces(rgb, detect, max_faces)
        if cancelled():
            raise Abandoned
        faces: list[FaceResult] = []
        infer_ms = 0.0
        if boxes:
            t = time.perf_counter()
            probabilities, _ = self.model.predict(self.crops(rgb, boxes, detect), flip=self.flip)
            infer_ms = (time.perf_counter() - t) * 1000
            faces = [
                FaceResult(box, score, summarize(p, self.model.ages, self.interval_mass), p)
                for box, score, p in zip(boxes, scores, probabilities, strict=True)
            ]
        timings = {
            "decode": (decoded - start) * 1000,
            "detect": detect_ms,
            "infer": infer_ms,
            "total": (time.perf_counter() - start) * 1000,
        }
        return Prediction(rgb.shape[1], rgb.shape[0], faces, timings)


def build_predictor(settings: Settings, model_dir: Path | None = None, runtime: str | None = None) -> Predictor:
    """The service's predictor as configured; also used by the benchmark and evaluation scripts.

    COMPUTE_THREADS requests run side by side, each on MODEL_THREADS threads in OpenCV and in the
    model runtime, so the cores are used without oversubscription.
    """
    import cv2

    cv2.setNumThreads(settings.model_threads)
    model = AgeModel(
        model_dir or settings.model_dir, runtime=runtime or settings.model_runtime, threads=settings.model_threads
    )
    detector = make_detector(
        settings.detector,
        min_confidence=settings.min_face_confidence,
        min_face=settings.detect_min_face,
        max_pixels=settings.detect_max_pixels,
        max_side=settings.detect_max_side,
    )
    return Predictor(model, detector, settings.max_image_pixels, settings.interval_mass, flip=settings.tta == "flip")
