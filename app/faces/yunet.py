"""YuNet: a box, a score and five landmarks per face, the default detector."""

from __future__ import annotations

import threading
from pathlib import Path

import cv2
import numpy as np

from app.faces.crop import Box, crop_square
from app.faces.detection import (
    FILES,
    MIN_CONFIDENCE,
    MIN_FACE,
    SHA256,
    YUNET,
    YUNET_MAX_PIXELS,
    Detection,
    checked_file,
    clip_box,
    detection_scale,
    largest_first,
    shrunk,
)


class YuNetDetector:
    """YuNet (OpenCV Zoo, 2023mar; face_detector/README.md): one pass of a small anchor-free
    network that gives each face a box, a score and five landmarks, which the landmark alignment
    (app.faces.crop.align_face) maps onto the training framing.

    Speed by scale: the photo is shrunk once (`detection_scale`) so that a face of `min_face`
    pixels spans NET_MIN_FACE, within `max_pixels`, but not below MIN_PIXELS; YuNet then finds
    faces from that size up to the whole picture in that one pass. `score` is the network's face
    score in [0, 1].

    Landmarks need more pixels than finding a face does: on a face under about 130 px in its input,
    YuNet puts the five points where an upright face has them (a head tilted by 20° comes out
    tilted by 2–3°). So each face smaller than LANDMARK_FACE in the pass is looked at once more, in
    a square of LANDMARK_CONTEXT × its box cut from the full photo and scaled so that the face spans
    LANDMARK_FACE pixels (about 3 ms a face here), and its landmarks are taken from there. The
    square is 192 px: YuNet pads its input up to a multiple of 32, so the 202 px of a 1.4 context
    ran as 224 px; at 4/3 the face keeps its 144 px (what the tilt needs) in a quarter fewer pixels,
    with the same faces found and the service path's validation MAE within 0.02 on both sources
    (scripts/landmark_look.py; smaller faces in the look lose the tilt: tune_detection.py --tilt).
    """

    name = "yunet"
    NET_MIN_FACE = 16  # px: the smallest face YuNet finds reliably in its input
    MIN_INPUT = 32  # px: the shortest side it is given (a smaller photo is letterboxed up to it)
    MIN_PIXELS = 320 * 240  # the shrink stops here: below it detection is cheap and faces gain detail
    NMS_IOU = 0.3
    LANDMARK_FACE = 144  # px: the face side at which the landmarks follow the head's tilt
    LANDMARK_CONTEXT = 4 / 3  # the landmark look's square, as a multiple of the box side: 192 px
    FLAT_STD = 2.0  # grey levels: a box whose pixels vary less than this is not a face

    def __init__(
        self,
        min_confidence: float = MIN_CONFIDENCE,
        min_face: int = MIN_FACE,
        max_pixels: int = YUNET_MAX_PIXELS,
        model_dir: Path = FILES,
    ) -> None:
        self.min_confidence, self.min_face, self.max_pixels = min_confidence, min_face, max_pixels
        self._path = checked_file(Path(model_dir) / YUNET)
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
        bgr = cv2.cvtColor(shrunk(rgb, scale), cv2.COLOR_RGB2BGR)
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
            box = clip_box(x, y, x + bw, y + bh, w, h)
            seen = clip_box(
                row[0], row[1], row[0] + row[2], row[1] + row[3], sw, sh
            )  # in the pass, without its padding
            if box is None or seen is None or self._flat(bgr, seen):
                continue
            landmarks = (row[4:14].reshape(5, 2) / scale).astype(np.float64)
            if max(row[2], row[3]) < self.LANDMARK_FACE:
                side = max(bw, bh)
                sharper = self._landmarks(rgb, cx - side / 2, cy - side / 2, side)
                landmarks = landmarks if sharper is None else sharper
            detections.append(Detection(box=box, score=float(row[14]), landmarks=landmarks))
        return largest_first(detections)
