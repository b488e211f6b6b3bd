"""What every face detector shares: the Detection it returns, the protocol, the defaults, the
detector files (face_detector/, checked by sha256) and the box helpers.

OpenCV's detectors are not safe to share between threads (`detectMultiScale` asserts and
`Net.forward` reuses its buffers under concurrent use), so each thread gets its own instance
(app.faces.detectors.make_detector makes one).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from app.faces.crop import Box

# the detectors' defaults, also the service's (app.config): chosen with scripts/tune_detection.py
MIN_CONFIDENCE, MIN_FACE, MAX_PIXELS = 0.5, 48, 400_000
YUNET_MAX_PIXELS = 250_000
# YuNet's five points, in its order: the person's right eye (on the left of a frontal photo), left
# eye, nose tip, right and left mouth corners
LANDMARKS = ("right_eye", "left_eye", "nose", "mouth_right", "mouth_left")
CASCADE = "haarcascade_frontalface_default.xml"
FILES = Path(__file__).parent / "face_detector"
DNN_CONFIG = "deploy.prototxt"
DNN_WEIGHTS = "res10_300x300_ssd_iter_140000.caffemodel"
YUNET = "face_detection_yunet_2023mar.onnx"
SHA256 = {
    DNN_CONFIG: "34d850436faf158ca4e690533ba27c1decf29653559299d80db9274146332ca7",
    DNN_WEIGHTS: "2a56a11a57a4a295956b0660b4a3d76bbdca2206c4961cea8efe7d95c7cb2f2d",
    YUNET: "8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4",
}


@dataclass(frozen=True)
class Detection:
    box: Box
    score: float | None  # None: no detector ran (the whole image is the face)
    landmarks: np.ndarray | None = None  # [5, 2] image pixels, in LANDMARKS order; None: box only


class FaceDetector(Protocol):
    name: str

    def detect(self, rgb: np.ndarray) -> list[Detection]: ...

    def describe(self) -> dict: ...


def clip_box(x0: float, y0: float, x1: float, y1: float, w: int, h: int) -> Box | None:
    """The box's part inside the image, in whole pixels; None when nothing of it is inside."""
    left, top = max(0, int(round(x0))), max(0, int(round(y0)))
    right, bottom = min(w, int(round(x1))), min(h, int(round(y1)))
    if right - left < 1 or bottom - top < 1:
        return None
    return Box(left, top, right - left, bottom - top)


def largest_first(detections: list[Detection]) -> list[Detection]:
    return sorted(detections, key=lambda d: d.box.width * d.box.height, reverse=True)


def checked_file(path: Path) -> Path:
    """A detector file that exists and matches its recorded sha256 (a damaged or replaced file is refused)."""
    if not path.is_file():
        raise RuntimeError(f"face detector file missing: {path}")
    if hashlib.sha256(path.read_bytes()).hexdigest() != SHA256[path.name]:
        raise RuntimeError(f"face detector file {path} does not match its sha256 (damaged or replaced)")
    return path


def detection_scale(h: int, w: int, net_min_face: int, min_face: int, max_pixels: int) -> float:
    """How much to shrink a photo before detection: so that a face of `min_face` pixels spans the
    `net_min_face` the network still finds, and to at most `max_pixels` (which bounds the time on
    large photos: there the smallest face found grows with the photo). Never enlarged."""
    return min(1.0, net_min_face / min_face, (max_pixels / (h * w)) ** 0.5)


def shrunk(rgb: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 1:
        return rgb
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
