"""The face crop, defined once: training, evaluation and the service all call these functions.

A face is framed as UTKFace's aligned chips are, in one of two ways, both measured on the
training faces (``python -m model_training calibrate-crop``):

- by its **landmarks** (`Template`, for a detector that gives five points: YuNet): the similarity
  transform (rotation, scale, shift) that best maps the face's five points onto the template's
  takes the face straight to the model's input, upright whatever the tilt of the head;
- by its **box** (`CropSpec`, for the box-only detectors): a square of side scale × box side
  around the box centre, shifted.

Pixels outside the image are filled by replicating the border.
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


@dataclass(frozen=True)
class Template:
    """Where the five landmarks (detect.LANDMARKS order) of a training chip lie, as fractions of
    the chip's side: an aligned face puts its landmarks there."""

    points: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if np.asarray(self.points, dtype=np.float64).shape != (5, 2):
            raise ValueError("a template has five (x, y) points")

    def to_dict(self) -> dict:
        return {"template": [list(p) for p in self.points]}

    @classmethod
    def from_dict(cls, data: dict) -> Template:
        return cls(tuple((float(x), float(y)) for x, y in data["template"]))


def spec_from_dict(data: dict) -> CropSpec | Template:
    """A model card's or calibration file's crop: a landmark template, or a box crop."""
    return Template.from_dict(data) if "template" in data else CropSpec.from_dict(data)


def similarity(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The 2×3 matrix of the rotation, uniform scale and shift that maps the points `src` onto
    `dst` with the least squared error (closed form; Umeyama 1991, without reflection)."""
    src, dst = np.asarray(src, np.float64), np.asarray(dst, np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s, d = src - mu_s, dst - mu_d
    var = (s**2).sum()
    if var <= 1e-12:
        raise ValueError("the landmarks coincide")
    a = (s * d).sum()  # Σ s·d
    b = (s[:, 0] * d[:, 1] - s[:, 1] * d[:, 0]).sum()  # Σ s×d
    scale_cos, scale_sin = a / var, b / var
    rotation = np.array([[scale_cos, -scale_sin], [scale_sin, scale_cos]])
    return np.column_stack([rotation, mu_d - rotation @ mu_s])


def align_face(image: np.ndarray, landmarks: np.ndarray, template: Template, size: int) -> np.ndarray:
    """The service's crop for a face with landmarks: warp it so that its five points land on the
    template's, straight to size×size.

    A face much larger than the output is first shrunk by area averaging (a bilinear warp alone
    would alias it); only the part of the image the output sees is cut and shrunk."""
    matrix = similarity(landmarks, np.asarray(template.points) * size)
    scale = float(np.hypot(matrix[0, 0], matrix[1, 0]))
    if scale < 0.5:
        inverse = cv2.invertAffineTransform(matrix)
        corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64) @ inverse.T
        h, w = image.shape[:2]
        x0, y0 = np.clip(np.floor(corners.min(axis=0)).astype(int), 0, [w - 1, h - 1])
        x1, y1 = np.clip(np.ceil(corners.max(axis=0)).astype(int) + 1, [x0 + 1, y0 + 1], [w, h])
        patch = image[y0:y1, x0:x1]
        pw, ph = max(1, round((x1 - x0) * scale * 2)), max(1, round((y1 - y0) * scale * 2))
        image = cv2.resize(patch, (pw, ph), interpolation=cv2.INTER_AREA)
        # image pixel → shrunk patch pixel (pixel centres, as cv2.resize maps them), then the matrix
        fx, fy = pw / (x1 - x0), ph / (y1 - y0)
        to_patch = np.array([[fx, 0, (0.5 - x0) * fx - 0.5], [0, fy, (0.5 - y0) * fy - 0.5]])
        matrix = matrix @ np.vstack([cv2.invertAffineTransform(to_patch), [0, 0, 1]])
    return cv2.warpAffine(image, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def crop_detection(
    image: np.ndarray, box: Box, landmarks: np.ndarray | None, spec: CropSpec | Template, size: int
) -> np.ndarray:
    """A detected face → the model's size×size RGB input: aligned by its landmarks with a
    template, cut by its box with a box crop."""
    if isinstance(spec, Template):
        if landmarks is None:
            raise ValueError("a landmark template needs a detector that gives landmarks")
        return align_face(image, landmarks, spec, size)
    return crop_face(image, box, spec, size)


def crop_whole(image: np.ndarray, size: int) -> np.ndarray:
    """An image that already is a face crop (a UTKFace chip, or `detect=false`): resize it as is."""
    return resize(image, size)


def read_rgb(path: str) -> np.ndarray:
    """Read an image file as 8-bit RGB; raises ValueError when it cannot be decoded."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot decode image: {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
