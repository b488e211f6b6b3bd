"""Measure the crop: where a face detector puts its box, or its landmarks, on a training face.

Each training chip is padded with a replicated border (as a face inside a larger photo; the Haar
cascade finds few faces in a bare 200 px chip) and the detector runs on it. For a detector with
landmarks (YuNet), the five points are expressed as fractions of the chip's side: their medians
are the `Template` that the alignment maps every face onto, so that an aligned face is framed as
a chip is. For a box-only detector, the chip's own frame is expressed relative to the box: the
medians make the `CropSpec` that reproduces the chip's framing from that detector's boxes. Each
detector frames a face its own way, so a crop is recorded with the detector it was measured with
(manifests/crop_DETECTOR.json) and a model directory carries one per detector.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from app.faces.crop import Box, CropSpec, Template, read_rgb, spec_from_dict
from app.faces.detection import FaceDetector
from app.faces.detectors import make_detector
from model_training.dataset import Face

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


def measure_chip(image: np.ndarray, detector: FaceDetector) -> np.ndarray | None:
    """The chip's face as the detector sees it, or None when it finds none: with landmarks, their
    ten coordinates as fractions of the chip's side (x, y of each point in turn); else (scale,
    shift_x, shift_y) of the chip frame relative to the box."""
    h, w = image.shape[:2]
    padded, cx, cy = pad_chip(image)
    found = detector.detect(padded)
    if not found:
        return None
    face = found[nearest([d.box for d in found], cx, cy)]
    side = max(h, w)
    if face.landmarks is not None:
        origin = np.array([cx - w / 2, cy - h / 2])
        return ((face.landmarks - origin) / side).ravel()
    box = face.box
    return np.array(
        [
            side / max(box.width, box.height),
            (cx - (box.x + box.width / 2)) / box.width,
            (cy - (box.y + box.height / 2)) / box.height,
        ]
    )


def symmetric(points: np.ndarray) -> np.ndarray:
    """The template made left-right symmetric about its own centre line (the mean of it and its
    mirror image there, whose right eye is the left eye): a tilted median becomes level, and the
    chips' own framing (their faces sit a little left of the chip's centre) is kept."""
    centre = points[:, 0].mean()
    mirrored = np.column_stack([2 * centre - points[:, 0], points[:, 1]])[[1, 0, 2, 4, 3]]
    return (points + mirrored) / 2


def default_path(detector: str) -> Path:
    return Path("manifests") / f"crop_{detector}.json"


def calibrate(
    faces: list[Face], data_root: Path, detector: FaceDetector | None = None
) -> tuple[CropSpec | Template, dict]:
    detector = detector or make_detector("yunet")
    found = [m for f in faces if (m := measure_chip(read_rgb(str(data_root / f.path)), detector)) is not None]
    if not found:
        raise ValueError("the detector found no face on any chip")
    values = np.array(found)
    median = np.median(values, axis=0)
    info = {"faces": len(faces), "detected": len(found), "detection_rate": round(len(found) / len(faces), 4)}
    if values.shape[1] == 10:  # landmarks: the template, and how far the chips' points spread around it
        points = symmetric(median.reshape(5, 2))
        spec = Template(tuple((round(float(x), 4), round(float(y), 4)) for x, y in points))
        spread = np.median(np.linalg.norm(values.reshape(-1, 5, 2) - points, axis=2), axis=0)
        info["median_distance"] = [round(float(d), 4) for d in spread]
        info["asymmetry"] = round(float(np.abs(median.reshape(5, 2) - points).max()), 4)
    else:
        spec = CropSpec(
            scale=round(float(median[0]), 4), shift_x=round(float(median[1]), 4), shift_y=round(float(median[2]), 4)
        )
        info["scale_iqr"] = [round(float(q), 4) for q in np.percentile(values[:, 0], [25, 75])]
    return spec, {**info, "pad": PAD, "detector": detector.describe()}


def save(spec: CropSpec | Template, info: dict, path: Path) -> None:
    path.write_text(json.dumps({**spec.to_dict(), "source": info}, indent=2) + "\n")


def load(path: Path) -> tuple[str, dict]:
    """(detector name, the crop as a model card holds it: scale, shifts and their source)."""
    data = json.loads(Path(path).read_text())
    spec_from_dict(data)  # raises on a malformed file
    detector = data.get("source", {}).get("detector", {})
    if "name" not in detector:
        raise ValueError(f"{path}: the crop does not say which detector it was measured with")
    return detector["name"], data
