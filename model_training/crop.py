"""The face crop, defined once: training, evaluation and the service all call these functions.

A crop is a square in image coordinates. A detector box becomes that square through a `CropSpec`
measured on the training faces (``python -m model_training calibrate-crop``), so that a face cut
from a photo is framed as UTKFace's aligned chips are. Pixels outside the image are filled by
replicating the border, and the square is resized to the model's input size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    width: int
    height: int


@dataclass(frozen=True)
class CropSpec:
    """How a detector box maps to the training framing.

    side = scale · max(box width, box height); the centre moves by (shift_x · width,
    shift_y · height) from the box centre.
    """

    scale: float = 1.0
    shift_x: float = 0.0
    shift_y: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> CropSpec:
        return cls(scale=float(data["scale"]), shift_x=float(data["shift_x"]), shift_y=float(data["shift_y"]))


def crop_square(image: np.ndarray, cx: float, cy: float, side: float, size: int) -> np.ndarray:
    """Cut the square of `side` pixels centred on (cx, cy), pad by replication, resize to size×size."""
    side = max(float(side), 1.0)
    x0 = int(round(cx - side / 2))
    y0 = int(round(cy - side / 2))
    s = max(int(round(side)), 1)
    h, w = image.shape[:2]
    left, top = max(0, -x0), max(0, -y0)
    right, bottom = max(0, x0 + s - w), max(0, y0 + s - h)
    patch = image[max(0, y0) : min(h, y0 + s), max(0, x0) : min(w, x0 + s)]
    if patch.size == 0:  # the square lies wholly outside the image: use the nearest edge pixel
        yy, xx = min(max(y0, 0), h - 1), min(max(x0, 0), w - 1)
        patch = image[yy : yy + 1, xx : xx + 1]
        top, bottom, left, right = 0, s - 1, 0, s - 1
    if top or bottom or left or right:
        patch = cv2.copyMakeBorder(patch, top, bottom, left, right, cv2.BORDER_REPLICATE)
    return resize(patch, size)


def resize(image: np.ndarray, size: int) -> np.ndarray:
    """Resize to size×size: area averaging when shrinking (no aliasing), bilinear when growing."""
    h, w = image.shape[:2]
    if (h, w) == (size, size):
        return image
    interpolation = cv2.INTER_AREA if size < min(h, w) else cv2.INTER_LINEAR
    return cv2.resize(image, (size, size), interpolation=interpolation)


def crop_face(image: np.ndarray, box: Box, spec: CropSpec, size: int) -> np.ndarray:
    """The service's crop: a detector box on a photo → the model's size×size RGB input."""
    cx = box.x + box.width / 2 + spec.shift_x * box.width
    cy = box.y + box.height / 2 + spec.shift_y * box.height
    side = spec.scale * max(box.width, box.height)
    return crop_square(image, cx, cy, side, size)


def crop_whole(image: np.ndarray, size: int) -> np.ndarray:
    """An image that already is a face crop (a UTKFace chip, or `detect=false`): resize it as is."""
    return resize(image, size)


def read_rgb(path: str) -> np.ndarray:
    """Read an image file as 8-bit RGB; raises ValueError when it cannot be decoded."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot decode image: {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
