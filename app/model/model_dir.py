"""The model directory, the contract between training and serving.

MODEL_DIR/
  saved_model/  TF SavedModel, signature "serving_default": input "image" float32 [N, S, S, 3]
                (RGB 0..255) → "probabilities" float32 [N, K], "expected_age" float32 [N]
  model.onnx    the same graph, inputs and outputs for ONNX Runtime (optional)
  model.int8.onnx  its int8 graph, present where its parity with model.onnx passed (model.json "int8")
  model.json    name, version, backbone, input_size S, ages [a_0..a_{K-1}], crops (one per face
                detector it was calibrated with: a landmark template for YuNet, a box crop for
                the others), training, metrics
  training/     the run's config.json, history.csv and curves.png, as export found them
  evaluation/   evaluate's report (metrics.json, report.md, plots), when it has been run
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.faces.crop import CropSpec, Template, spec_from_dict
from app.model.fusion import Fusion

CARD = "model.json"
SAVED_MODEL = "saved_model"
ONNX = "model.onnx"
INT8 = "model.int8.onnx"  # the int8 graph, where its parity with model.onnx passed (model.json "int8")
TRAINING = "training"
REQUIRED = ("name", "version", "input_size", "ages", "crops")


class ModelDirError(RuntimeError):
    """A model directory that is missing, incomplete or inconsistent; the message says which."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__(f"model directory {path}: {problem}")
        self.path, self.problem = path, problem


def read_card(model_dir: Path) -> dict:
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise ModelDirError(model_dir, "does not exist or is not a directory")
    path = model_dir / CARD
    try:
        card = json.loads(path.read_text())
    except FileNotFoundError:
        raise ModelDirError(model_dir, f"{CARD} is missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelDirError(model_dir, f"{CARD} is not valid JSON ({exc})") from None
    if "crop" in card and "crops" not in card:  # a card from before the DNN detector: a Haar crop
        card["crops"] = {"haar": card.pop("crop")}
    missing = [k for k in REQUIRED if k not in card]
    if missing:
        raise ModelDirError(model_dir, f"{CARD} lacks {', '.join(missing)}")
    try:
        if not card["crops"]:
            raise ValueError("no detector has a crop")
        for spec in card["crops"].values():
            spec_from_dict(spec)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:
        raise ModelDirError(model_dir, f"{CARD} has an invalid crop ({exc})") from None
    return card


def _tensorflow_runner(model_dir: Path, threads: int | None) -> Callable[[np.ndarray], dict]:
    try:
        import tensorflow as tf  # imported only when this runtime is chosen: the serving install has none
    except ImportError:
        raise ModelDirError(
            model_dir,
            "the tensorflow runtime needs TensorFlow: pip install 'dex-age[tensorflow]', or use MODEL_RUNTIME=onnx",
        ) from None

    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow already ran in this process (a notebook): keep its threads
            pass
    saved = model_dir / SAVED_MODEL
    if not (saved / "saved_model.pb").is_file():
        raise ModelDirError(model_dir, f"{SAVED_MODEL}/saved_model.pb is missing")
    try:
        fn = tf.saved_model.load(str(saved)).signatures["serving_default"]
    except Exception as exc:  # TF raises many types for a damaged SavedModel
        raise ModelDirError(model_dir, f"cannot load {SAVED_MODEL} ({type(exc).__name__}: {exc})") from None
    return lambda images: {k: v.numpy() for k, v in fn(image=tf.constant(images)).items()}


def int8_passed(card: dict) -> bool:
    """Whether the card says its int8 graph held to the float graph (model_training.quantize's rule)."""
    return bool(card.get("int8", {}).get("passed"))


def onnx_session(path: Path, threads: int | None = None):
    """An ONNX Runtime session on the CPU, `threads` intra-op threads (None: its default), as serving runs one."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _onnx_runner(model_dir: Path, threads: int | None, file: str = ONNX) -> Callable[[np.ndarray], dict]:
    path = model_dir / file
    if not path.is_file():
        hint = (
            "MODEL_PRECISION=float serves the float graph"
            if file == INT8
            else "export it, or serve the SavedModel with MODEL_RUNTIME=tensorflow"
        )
        raise ModelDirError(model_dir, f"{file} is missing ({hint})")
    try:
        session = onnx_session(path, threads)
    except Exception as exc:  # onnxruntime raises its own exception types for a damaged file
        raise ModelDirError(model_dir, f"cannot load {file} ({type(exc).__name__}: {exc})") from None
    names = [o.name for o in session.get_outputs()]
    return lambda images: dict(zip(names, session.run(names, {"image": images}), strict=True))


RUNTIMES = {"onnx": _onnx_runner, "tensorflow": _tensorflow_runner}  # the first is the default
DEFAULT_RUNTIME = next(iter(RUNTIMES))
PRECISIONS = ("auto", "float")  # auto: int8 where it passed (ONNX Runtime only); float: never int8


class AgeModel:
    """A loaded model directory: the card, the crop, and a `predict` on batches of face crops.

    `runtime` is "onnx" (model.onnx under ONNX Runtime, the default: the serving install has no
    other) or "tensorflow" (the SavedModel); `threads` bounds the runtime's intra-op threads (None: its
    default); `precision` "auto" serves the int8 graph where the card says it passed (ONNX Runtime
    only), "float" never does. `self.precision` says which graph runs: "int8" or "float".
    """

    def __init__(
        self, model_dir: Path, runtime: str = DEFAULT_RUNTIME, threads: int | None = None, precision: str = "auto"
    ) -> None:
        if runtime not in RUNTIMES:
            raise ValueError(f"unknown runtime {runtime!r}: use one of {sorted(RUNTIMES)}")
        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}: use one of {list(PRECISIONS)}")
        self.path = Path(model_dir)
        self.runtime = runtime
        self.card = read_card(self.path)
        int8 = runtime == "onnx" and precision == "auto" and int8_passed(self.card)
        self.precision = "int8" if int8 else "float"
        self.input_size = int(self.card["input_size"])
        self.ages = np.asarray(self.card["ages"], dtype=np.float32)
        self.crops = {name: spec_from_dict(spec) for name, spec in self.card["crops"].items()}
        self.fusion = Fusion.from_card(self.card)  # how one person's frames are fused (scripts/fit_fusion.py)
        self._run = _onnx_runner(self.path, threads, INT8) if int8 else RUNTIMES[runtime](self.path, threads)
        try:
            probabilities, _ = self.predict(np.zeros((1, self.input_size, self.input_size, 3), np.float32))
        except Exception as exc:
            raise ModelDirError(self.path, f"the model does not run on a {self.input_size}px input ({exc})") from None
        if probabilities.shape[1] != len(self.ages):
            raise ModelDirError(
                self.path, f"the model outputs {probabilities.shape[1]} classes but {CARD} lists {len(self.ages)} ages"
            )

    def crop_for(self, detector: str) -> CropSpec | Template:
        """The crop measured with `detector` (a landmark template or a box crop): a crop only
        reproduces the training framing from the landmarks or boxes of the detector it was
        calibrated on."""
        if detector not in self.crops:
            raise ModelDirError(
                self.path,
                f"{CARD} has no crop for the {detector!r} detector (it has: {', '.join(sorted(self.crops))}); "
                f"calibrate one (python -m model_training calibrate-crop --detector {detector}) and add it "
                "(python -m model_training set-crop), or choose a detector it has (DETECTOR=...)",
            )
        return self.crops[detector]

    def predict(self, images: np.ndarray, flip: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities [N, K] and expected ages [N] for RGB 0..255 crops [N, S, S, 3].

        `flip`: test-time augmentation — each crop and its mirror image go through the model in
        one batch and their distributions are averaged (a face's age does not change in a mirror).
        """
        images = np.ascontiguousarray(images, dtype=np.float32)
        if not flip:
            out = self._run(images)
            return out["probabilities"], out["expected_age"]
        n = len(images)
        probabilities = self._run(np.concatenate([images, images[:, :, ::-1]]))["probabilities"]
        probabilities = (probabilities[:n] + probabilities[n:]) / 2
        return probabilities, probabilities @ self.ages
