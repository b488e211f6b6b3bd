"""The pipeline, in process: decode → detect → crop (app.faces.crop) → one batch → the JSON's
fields. The service, the `dex-age` command and notebooks all use it:

    from app.estimator import Estimator

    estimator = Estimator.from_dir("models/dex-age", runtime="onnx")
    answer = estimator.answer("photo.jpg")  # a path, the file's bytes, or an RGB uint8 array
    answer["faces"][0]["age"], answer["faces"][0]["age_interval"]

`predict` returns what POST /predict answers (README, Endpoints), as a dict; a file that cannot be
read raises `app.imaging.ImageError` with the API's error code (`.error`) and sentence (`.detail`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from app import imaging
from app.config import Settings
from app.faces.crop import Box, crop_detection, crop_whole
from app.faces.detection import LANDMARKS, Detection, FaceDetector
from app.faces.detectors import make_detector
from app.model.distribution import AgeSummary, summarize
from app.model.model_dir import AgeModel

ImageInput = str | Path | bytes | np.ndarray  # a file's path, its bytes, or RGB uint8 pixels


class Abandoned(Exception):
    """The client went away: the prediction was stopped."""


@dataclass(frozen=True)
class FaceResult:
    box: Box
    detection_score: float | None
    landmarks: np.ndarray | None  # [5, 2] image pixels in detect.LANDMARKS order; None: a box-only detector
    summary: AgeSummary
    probabilities: np.ndarray


@dataclass(frozen=True)
class Prediction:
    width: int
    height: int
    faces: list[FaceResult]
    timings_ms: dict[str, float]


def summary_fields(summary: AgeSummary) -> dict:
    """An age summary as the JSON answers it: age, age_std, age_interval."""
    return {
        "age": round(summary.age, 3),
        "age_std": round(summary.std, 3),
        "age_interval": {"low": summary.low, "high": summary.high, "mass": round(summary.mass, 4)},
    }


class Estimator:
    def __init__(
        self, model: AgeModel, detector: FaceDetector, max_pixels: int, interval_mass: float, flip: bool = False
    ) -> None:
        self.model, self.detector = model, detector
        self.crop = model.crop_for(detector.name)  # refuses a model without a crop for this detector
        self.max_pixels, self.interval_mass, self.flip = max_pixels, interval_mass, flip

    @classmethod
    def from_dir(cls, model_dir: str | Path | None = None, runtime: str | None = None, **settings) -> Estimator:
        """The model directory (default: the shipped model) on `runtime` ("tensorflow" or "onnx");
        other keyword arguments are the service's settings (e.g. detector="haar", tta="flip"), and
        what is not given comes from the environment, as for the service."""
        return cls.from_settings(Settings(**settings), model_dir, runtime)

    @classmethod
    def from_settings(
        cls, settings: Settings, model_dir: str | Path | None = None, runtime: str | None = None
    ) -> Estimator:
        """The estimator as the service configures it.

        COMPUTE_THREADS requests run side by side, each on MODEL_THREADS threads in OpenCV and in
        the model runtime, so the cores are used without oversubscription.
        """
        import cv2

        cv2.setNumThreads(settings.model_threads)
        model = AgeModel(
            model_dir or settings.model_dir,
            runtime=runtime or settings.model_runtime,
            threads=settings.model_threads,
            precision=settings.model_precision,
        )
        detector = make_detector(
            settings.detector,
            min_confidence=settings.min_face_confidence,
            min_face=settings.detect_min_face,
            max_pixels=settings.detect_max_pixels,
            max_side=settings.detect_max_side,
        )
        return cls(model, detector, settings.max_image_pixels, settings.interval_mass, flip=settings.tta == "flip")

    def answer(
        self, image: ImageInput, detect: bool = True, max_faces: int = 10, include_distribution: bool = True
    ) -> dict:
        """Every face in `image`, largest first, as POST /predict answers it."""
        return self.answer_from(self.prediction(image, detect, max_faces), include_distribution)

    def answer_from(self, prediction: Prediction, include_distribution: bool = True) -> dict:
        """The JSON's fields for a prediction."""
        return {
            "model": self.model_ref(),
            "image": {"width": prediction.width, "height": prediction.height},
            "faces": [self.face_fields(face, include_distribution) for face in prediction.faces],
            "timings_ms": {k: round(v, 2) for k, v in prediction.timings_ms.items()},
        }

    def face_fields(self, face: FaceResult, include_distribution: bool = True) -> dict:
        """One face as the JSON answers it (schemas.Face): the one place its fields are written."""
        return {
            "box": vars(face.box),
            "detection_score": face.detection_score,
            "landmarks": None
            if face.landmarks is None
            else {
                name: {"x": round(float(x), 1), "y": round(float(y), 1)}
                for name, (x, y) in zip(LANDMARKS, face.landmarks, strict=True)
            },
            **summary_fields(face.summary),
            "distribution": self.distribution_fields(face.probabilities) if include_distribution else None,
        }

    def fused_fields(self, probabilities: np.ndarray, include_distribution: bool = False) -> dict:
        """One person's frames [n, ages] fused by the model's rule (app.model.fusion) as the
        JSON answers them: frames, effective_frames, age, age_std, age_interval (distribution)."""
        fusion, n = self.model.fusion, len(probabilities)
        p = fusion.fuse(probabilities)
        return {
            "frames": n,
            "effective_frames": round(fusion.effective_frames(n), 3),
            **summary_fields(summarize(p, self.model.ages, self.interval_mass)),
            **({"distribution": self.distribution_fields(p)} if include_distribution else {}),
        }

    def distribution_fields(self, probabilities: np.ndarray) -> dict:
        return {"ages": [int(a) for a in self.model.ages], "probabilities": [round(float(p), 6) for p in probabilities]}

    def model_ref(self) -> dict:
        return {"name": self.model.card["name"], "version": self.model.card["version"]}

    def _rgb(self, image: ImageInput) -> np.ndarray:
        if isinstance(image, np.ndarray):
            if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
                shape = f"{image.dtype} of shape {image.shape}"
                raise ValueError(f"an image array must be RGB uint8 [height, width, 3], not {shape}")
            return np.ascontiguousarray(image)
        if isinstance(image, str | Path):
            image = Path(image).read_bytes()
        return imaging.decode(image, self.max_pixels)

    def detections(self, rgb: np.ndarray, detect: bool, max_faces: int) -> tuple[list[Detection], float]:
        """The faces found (largest first; with detect=False the whole image, score None), and the
        detection time in ms."""
        start = time.perf_counter()
        if not detect:
            h, w = rgb.shape[:2]
            return [Detection(Box(0, 0, w, h), None)], 0.0
        detections = self.detector.detect(rgb)[:max_faces]
        return detections, (time.perf_counter() - start) * 1000

    def crops(self, rgb: np.ndarray, detections: list[Detection], detect: bool) -> np.ndarray:
        size = self.model.input_size
        if not detect:
            return crop_whole(rgb, size)[None]
        return np.stack([crop_detection(rgb, d.box, d.landmarks, self.crop, size) for d in detections])

    def prediction(
        self, image: ImageInput, detect: bool = True, max_faces: int = 10, cancelled: Callable[[], bool] = lambda: False
    ) -> Prediction:
        """Decode, detect, crop, estimate. `cancelled` is asked between the stages: once it says
        True (the client has gone), the work stops with `Abandoned`."""
        try:
            return self._prediction(image, detect, max_faces, cancelled)
        finally:
            imaging.release_memory()  # the decoded image is gone: give its pages back

    def predictions(
        self, images: list[ImageInput], detect: bool = True, max_faces: int = 10
    ) -> list[Prediction | Exception]:
        """Several images at once: each decoded and its faces found, then every face crop of them
        through one forward. An image that cannot be read gives its exception in its place."""
        staged: list[_Staged | Exception] = []
        for image in images:
            try:
                staged.append(self._staged(image, detect, max_faces, lambda: False))
            except Exception as exc:  # noqa: BLE001 - the caller maps each to its error
                staged.append(exc)
            finally:
                imaging.release_memory()
        found = [s for s in staged if isinstance(s, _Staged) and s.detections]
        t = time.perf_counter()
        if found:
            crops = np.concatenate([s.crops for s in found])
            probabilities, _ = self.model.predict(crops, flip=self.flip)
        infer_ms = (time.perf_counter() - t) * 1000 / max(len(found), 1)
        start = 0
        for s in found:
            s.probabilities = probabilities[start : start + len(s.detections)]
            start += len(s.detections)
        return [s if isinstance(s, Exception) else self._finished(s, infer_ms if s.detections else 0.0) for s in staged]

    def _staged(self, image: ImageInput, detect: bool, max_faces: int, cancelled: Callable[[], bool]) -> _Staged:
        """An image decoded, its faces found and cut: all of a prediction but the model's forward."""
        start = time.perf_counter()
        rgb = self._rgb(image)
        decoded = time.perf_counter()
        if cancelled():
            raise Abandoned
        detections, detect_ms = self.detections(rgb, detect, max_faces)
        if cancelled():
            raise Abandoned
        crops = self.crops(rgb, detections, detect) if detections else None
        return _Staged(rgb.shape[1], rgb.shape[0], detections, crops, start, (decoded - start) * 1000, detect_ms)

    def _finished(self, staged: _Staged, infer_ms: float) -> Prediction:
        faces = [
            FaceResult(d.box, d.score, d.landmarks, summarize(p, self.model.ages, self.interval_mass), p)
            for d, p in zip(staged.detections, staged.probabilities, strict=True)
        ]
        timings = {
            "decode": staged.decode_ms,
            "detect": staged.detect_ms,
            "infer": infer_ms,
            "total": (time.perf_counter() - staged.start) * 1000,
        }
        return Prediction(staged.width, staged.height, faces, timings)

    def _prediction(self, image: ImageInput, detect: bool, max_faces: int, cancelled: Callable[[], bool]) -> Prediction:
        staged = self._staged(image, detect, max_faces, cancelled)
        infer_ms = 0.0
        if staged.detections:
            t = time.perf_counter()
            staged.probabilities, _ = self.model.predict(staged.crops, flip=self.flip)
            infer_ms = (time.perf_counter() - t) * 1000
        return self._finished(staged, infer_ms)


@dataclass
class _Staged:
    """An image ready for the model: its size, faces and crops, and the times so far."""

    width: int
    height: int
    detections: list[Detection]
    crops: np.ndarray | None
    start: float
    decode_ms: float
    detect_ms: float
    probabilities: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
