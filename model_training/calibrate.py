"""Measure the crop: where a face detector puts its box on a training face.

Each training chip is padded with a replicated border (as a face inside a larger photo; the Haar
cascade finds few faces in a bare 200 px chip), the detector runs on it, and the chip's own frame
is expressed relative to the box. The medians make the `CropSpec` that reproduces the training
framing from that detector's boxes: each detector frames a face its own way, so a crop is
recorded with the detector it was measured with (manifests/crop_DETECTOR.json) and a model
directory carries one per detector.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from model_training.crop import Box, CropSpec, read_rgb
from model_training.dataset import Face
from model_training.detect import FaceDetector, make_detector

PAD = 0.5  # border added on each side, as a share of the chip side


def pad_chip(image: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The chip inside a replicated border, as a face inside a larger photo, and its centre there."""
    h, w = image.shape[:2]
    pad = int(PAD * max(h, w))
    return cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE), pad + w / 2, pad + h / 2


def nearest(boxes: list[Box], cx: float, cy: float) -> int:
    """Index of the box whose centre is nearest (cx, cy): the chip's own face, not a neighbour."""
    return min(
        range(len(boxes)),
        key=lambda i: (boxes[i].x + boxes[i].width / 2 - cx) ** 2 + (boxes[i].y + boxes[i].height / 2 - cy) ** 2,
    )


def measure_chip(image: np.ndarray, detector: FaceDetector) -> tuple[float, float, float] | None:
    """(scale, shift_x, shift_y) of the chip frame relative to the detected box, or None."""
    h, w = image.shape[:2]
    padded, cx, cy = pad_chip(image)
    boxes = [d.box for d in detector.detect(padded)]
    if not boxes:
        return None
    box = boxes[nearest(boxes, cx, cy)]
    side = max(box.width, box.height)
    return (
        max(h, w) / side,
        (cx - (box.x + box.width / 2)) / box.width,
        (cy - (box.y + box.height / 2)) / box.height,
    )


def default_path(detector: str) -> Path:
    return Path("manifests") / f"crop_{detector}.json"


def calibrate(faces: list[Face], data_root: Path, detector: FaceDetector | None = None) -> tuple[CropSpec, dict]:
    detector = detector or make_detector("dnn")
    found = [m for f in faces if (m := measure_chip(read_rgb(str(data_root / f.path)), detector))]
    if not found:
        raise ValueError("the detector found no face on any chip")
    values = np.array(found)
    median = np.median(values, axis=0)
    spec = CropSpec(
        scale=round(float(median[0]), 4), shift_x=round(float(median[1]), 4), shift_y=round(float(median[2]), 4)
    )
    info = {
        "faces": len(faces),
        "detected": len(found),
        "detection_rate": round(len(found) / len(faces), 4),
        "scale_iqr": [round(float(q), 4) for q in np.percentile(values[:, 0], [25, 75])],
        "pad": PAD,
        "detector": detector.describe(),
    }
    return spec, info


def save(spec: CropSpec, info: dict, path: Path) -> None:
    path.write_text(json.dumps({**spec.to_dict(), "source": info}, indent=2) + "\n")


def load(path: Path) -> tuple[str, dict]:
    """(detector name, the crop as a model card holds it: scale, shifts and their source)."""
    data = json.loads(Path(path).read_text())
    CropSpec.from_dict(data)  # raises on a malformed file
    detector = data.get("source", {}).get("detector", {})
    if "name" not in detector:
        raise ValueError(f"{path}: the crop does not say which detector it was measured with")
    return detector["name"], data
