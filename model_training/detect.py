"""Face detection, shared by crop calibration, training and the service: YuNet (the default; a box,
a score and five landmarks per face), OpenCV's res10 DNN face detector or its Haar cascade (boxes
only). All return boxes clipped to the image, largest first.

OpenCV's detectors are not safe to share between threads (`detectMultiScale` asserts and
`Net.forward` reuses its buffers under concurrent use), so each thread gets its own instance.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from model_training.crop import Box, crop_square

DETECTORS = ("yunet", "dnn", "haar")
# the detectors' defaults, also the service's (app.config): chosen with scripts/tune_detection.py
MIN_CONFIDENCE, MIN_FACE, MAX_PIXELS = 0.5, 48, 400_000
YUNET_MAX_PIXELS = 250_000
# YuNet's five points, in its order: the person's right eye (on the left of a frontal photo), left
# eye, nose tip, right and left mouth corners
LANDMARKS = ("right_eye", "left_eye", "nose", "mouth_right", "mouth_left")
CASCADE = "haarcascade_frontalface_default.xml"
DNN_DIR = Path(__file__).parent / "face_detector"
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


def _clip(x0: float, y0: float, x1: float, y1: float, w: int, h: int) -> Box | None:
    """The box's part inside the image, in whole pixels; None when nothing of it is inside."""
    left, top = max(0, int(round(x0))), max(0, int(round(y0)))
    right, bottom = min(w, int(round(x1))), min(h, int(round(y1)))
    if right - left < 1 or bottom - top < 1:
        return None
    return Box(left, top, right - left, bottom - top)


def _largest_first(detections: list[Detection]) -> list[Detection]:
    return sorted(detections, key=lambda d: d.box.width * d.box.height, reverse=True)


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
            box = _clip(x / factor, y / factor, (x + bw) / factor, (y + bh) / factor, w, h)
            if box is not None:
                detections.append(Detection(box=box, score=float(weight)))
        return _largest_first(detections)


def _checked(path: Path) -> Path:
    """A detector file that exists and matches its recorded sha256 (a damaged or replaced file is refused)."""
    if not path.is_file():
        raise RuntimeError(f"face detector file missing: {path}")
    if hashlib.sha256(path.read_bytes()).hexdigest() != SHA256[path.name]:
        raise RuntimeError(f"face detector file {path} does not match its sha256 (damaged or replaced)")
    return path


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
        model_dir: Path = DNN_DIR,
    ) -> None:
        self.min_confidence, self.margin, self.whole_side = min_confidence, margin, whole_side
        self.min_face, self.max_pixels = min_face, max_pixels
        self._config, self._weights = _checked(Path(model_dir) / DNN_CONFIG), _checked(Path(model_dir) / DNN_WEIGHTS)
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
        bgr = cv2.cvtColor(_shrunk(rgb, scale), cv2.COLOR_RGB2BGR)
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
        for i in _suppress(rows, self.NMS_IOU, self.NESTED):
            box = _clip(*rows[i, 1:], w, h)
            if box is not None:
                detections.append(Detection(box=box, score=float(rows[i, 0])))
        return _largest_first(detections)


def detection_scale(h: int, w: int, net_min_face: int, min_face: int, max_pixels: int) -> float:
    """How much to shrink a photo before detection: so that a face of `min_face` pixels spans the
    `net_min_face` the network still finds, and to at most `max_pixels` (which bounds the time on
    large photos: there the smallest face found grows with the photo). Never enlarged."""
    return min(1.0, net_min_face / min_face, (max_pixels / (h * w)) ** 0.5)


def _shrunk(rgb: np.ndarray, scale: float) -> np.ndarray:
    if scale >= 1:
        return rgb
    h, w = rgb.shape[:2]
    return cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


class YuNetDetector:
    """YuNet (OpenCV Zoo, 2023mar; face_detector/README.md): one pass of a small anchor-free
    network that gives each face a box, a score and five landmarks, which the landmark alignment
    (model_training.crop.align_face) maps onto the training framing.

    Speed by scale: the photo is shrunk once (`detection_scale`) so that a face of `min_face`
    pixels spans NET_MIN_FACE, within `max_pixels`, but not below MIN_PIXELS; YuNet then finds
    faces from that size up to the whole picture in that one pass. `score` is the network's face
    score in [0, 1].

    Landmarks need more pixels than finding a face does: on a face under about 130 px in its input,
    YuNet puts the five points where an upright face has them (a head tilted by 20° comes out
    tilted by 2–3°). So each face smaller than LANDMARK_FACE in the pass is looked at once more, in
    a square of LANDMARK_CONTEXT × its box cut from the full photo and scaled so that the face spans
    LANDMARK_FACE pixels (about 3 ms a face here), and its landmarks are taken from there.
    """

    name = "yunet"
    NET_MIN_FACE = 16  # px: the smallest face YuNet finds reliably in its input
    MIN_INPUT = 32  # px: the shortest side it is given (a smaller photo is letterboxed up to it)
    MIN_PIXELS = 320 * 240  # the shrink stops here: below it detection is cheap and faces gain detail
    NMS_IOU = 0.3
    LANDMARK_FACE = 144  # px: the face side at which the landmarks follow the head's tilt
    LANDMARK_CONTEXT = 1.4  # the landmark look's square, as a multiple of the box side
    FLAT_STD = 2.0  # grey levels: a box whose pixels vary less than this is not a face

    def __init__(
        self,
        min_confidence: float = MIN_CONFIDENCE,
        min_face: int = MIN_FACE,
        max_pixels: int = YUNET_MAX_PIXELS,
        model_dir: Path = DNN_DIR,
    ) -> None:
        self.min_confidence, self.min_face, self.max_pixels = min_confidence, min_face, max_pixels
        self._path = _checked(Path(model_dir) / YUNET)
        self._local = threading.local()
        self._net()

    def _net(self) -> cv2.FaceDetectorYN:
        """This thread's network (OpenCV's detectors must not be shared between threads)."""
        net = getattr(self._local, "net", None)
        if net is None:
            try:
                net = cv2.FaceDetectorYN.create(str(self._path), "", (320, 320), self.min_confidence, self.NMS_IOU)
            except cv2.error as exc:
                raise RuntimeError(f"cannot load face detector {self._path} ({exc})") from None
            self._local.net = net
        return net

    def describe(self) -> dict:
        return {
            "name": self.name,
            "model": YUNET,
            "sha256": SHA256[YUNET],
            "min_confidence": self.min_confidence,
            "min_face": self.min_face,
            "max_pixels": self.max_pixels,
        }

    def _run(self, bgr: np.ndarray) -> np.ndarray:
        """Rows (x, y, w, h, ten landmark coordinates, score) in the coordinates of `bgr`."""
        net = self._net()
        net.setInputSize((bgr.shape[1], bgr.shape[0]))
        _, rows = net.detect(bgr)
        if rows is None:
            return np.zeros((0, 15), np.float32)
        # a strip of a few pixels can give rows of nan, or of landmarks far outside their box: no face
        rows = rows[np.isfinite(rows).all(axis=1) & (rows[:, 2] > 0) & (rows[:, 3] > 0)]
        x, y = rows[:, 4:14:2], rows[:, 5:14:2]
        mx, my = (0.25 * rows[:, 2])[:, None], (0.25 * rows[:, 3])[:, None]
        inside = (x >= rows[:, :1] - mx) & (x <= (rows[:, 0] + rows[:, 2])[:, None] + mx)
        inside &= (y >= rows[:, 1:2] - my) & (y <= (rows[:, 1] + rows[:, 3])[:, None] + my)
        return rows[inside.all(axis=1)]

    def _landmarks(self, rgb: np.ndarray, x: float, y: float, side: float) -> np.ndarray | None:
        """The landmarks of the face boxed at (x, y, side) in `rgb`, from a look at LANDMARK_FACE px."""
        n = round(self.LANDMARK_FACE * self.LANDMARK_CONTEXT)
        cx, cy, span = x + side / 2, y + side / 2, side * self.LANDMARK_CONTEXT
        rows = self._run(cv2.cvtColor(crop_square(rgb, cx, cy, span, n), cv2.COLOR_RGB2BGR))
        if len(rows) == 0:
            return None
        centres = rows[:, :2] + rows[:, 2:4] / 2
        row = rows[np.argmin(((centres - n / 2) ** 2).sum(axis=1))]
        # crop_square's pixel u holds the photo's x0 + (u + 0.5) · s / n − 0.5
        x0, y0, s = round(cx - span / 2), round(cy - span / 2), max(round(span), 1)
        return row[4:14].reshape(5, 2).astype(np.float64) * (s / n) + [x0, y0] + (s / n - 1) / 2

    @classmethod
    def _flat(cls, image: np.ndarray, box: Box) -> bool:
        """A box of one flat colour holds no face. OpenCV 4.14's YuNet now and then scores a patch
        of a uniform grey strip as a face (once in CI, once in 75 passes here over the same array):
        its pixels are a check that does not depend on the network. Looked at in the shrunk image
        detection ran on, so its cost is bounded by `max_pixels`, not by the photo."""
        patch = image[box.y : box.y + box.height, box.x : box.x + box.width]
        return patch.size == 0 or float(patch.std()) < cls.FLAT_STD

    def detect(self, rgb: np.ndarray) -> list[Detection]:
        h, w = rgb.shape[:2]
        scale = detection_scale(h, w, self.NET_MIN_FACE, self.min_face, self.max_pixels)
        scale = min(1.0, max(scale, (self.MIN_PIXELS / (h * w)) ** 0.5))
        bgr = cv2.cvtColor(_shrunk(rgb, scale), cv2.COLOR_RGB2BGR)
        sh, sw = bgr.shape[:2]
        if min(sh, sw) < self.MIN_INPUT:  # a thin strip or a thumbnail: pad it to what the network takes
            bgr = cv2.copyMakeBorder(
                bgr, 0, max(0, self.MIN_INPUT - sh), 0, max(0, self.MIN_INPUT - sw), cv2.BORDER_CONSTANT
            )
        detections = []
        for row in self._run(bgr):
            x, y, bw, bh = row[:4] / scale
            cx, cy = x + bw / 2, y + bh / 2
            if not (0 <= cx < w and 0 <= cy < h):  # its centre on the padding: not a face of this photo
                continue
            box = _clip(x, y, x + bw, y + bh, w, h)
            seen = _clip(row[0], row[1], row[0] + row[2], row[1] + row[3], sw, sh)  # in the pass, without its padding
            if box is None or seen is None or self._flat(bgr, seen):
                continue
            landmarks = (row[4:14].reshape(5, 2) / scale).astype(np.float64)
            if max(row[2], row[3]) < self.LANDMARK_FACE:
                side = max(bw, bh)
                sharper = self._landmarks(rgb, cx - side / 2, cy - side / 2, side)
                landmarks = landmarks if sharper is None else sharper
            detections.append(Detection(box=box, score=float(row[14]), landmarks=landmarks))
        return _largest_first(detections)


def _suppress(rows: np.ndarray, iou: float, nested: float) -> list[int]:
    """Non-maximum suppression over rows (confidence, x0, y0, x1, y1), surest first: a box is
    dropped when it overlaps a kept box by more than `iou`, or lies inside it by more than `nested`
    of its own area."""
    area = (rows[:, 3] - rows[:, 1]) * (rows[:, 4] - rows[:, 2])
    kept: list[int] = []
    for i in np.argsort(-rows[:, 0], kind="stable"):
        ok = True
        for j in kept:
            iw = min(rows[i, 3], rows[j, 3]) - max(rows[i, 1], rows[j, 1])
            ih = min(rows[i, 4], rows[j, 4]) - max(rows[i, 2], rows[j, 2])
            inter = max(0.0, iw) * max(0.0, ih)
            if inter > iou * (area[i] + area[j] - inter) or inter > nested * area[i]:
                ok = False
                break
        if ok:
            kept.append(int(i))
    return kept


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
