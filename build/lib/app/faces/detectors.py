"""The detectors by name: the one factory the service, the CLI and training call."""

from __future__ import annotations

from app.faces.detection import MAX_PIXELS, MIN_CONFIDENCE, MIN_FACE, YUNET_MAX_PIXELS, FaceDetector
from app.faces.dnn import DnnDetector
from app.faces.haar import HaarDetector
from app.faces.yunet import YuNetDetector

DETECTORS = ("yunet", "dnn", "haar")


def make_detector(
    name: str,
    min_confidence: float = MIN_CONFIDENCE,
    min_face: int = MIN_FACE,
    max_pixels: int | None = None,
    max_side: int = 1024,
) -> FaceDetector:
    """The detector called `name` ("yunet", "dnn" or "haar"), with the service's settings
    (`max_pixels` None: the detector's own default)."""
    if name == "yunet":
        max_pixels = max_pixels or YUNET_MAX_PIXELS
        return YuNetDetector(min_confidence=min_confidence, min_face=min_face, max_pixels=max_pixels)
    if name == "dnn":
        max_pixels = max_pixels or MAX_PIXELS
        return DnnDetector(min_confidence=min_confidence, min_face=min_face, max_pixels=max_pixels)
    if name == "haar":
        return HaarDetector(max_side=max_side)
    raise ValueError(f"unknown detector {name!r}: use one of {', '.join(DETECTORS)}")
