"""The model directory, the contract between training and serving.

MODEL_DIR/
  saved_model/  TF SavedModel, signature "serving_default": input "image" float32 [N, S, S, 3]
                (RGB 0..255) → "probabilities" float32 [N, K], "expected_age" float32 [N]
  model.json    name, version, backbone, input_size S, ages [a_0..a_{K-1}], crop, training, metrics
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from model_training.crop import CropSpec

CARD = "model.json"
SAVED_MODEL = "saved_model"
REQUIRED = ("name", "version", "input_size", "ages", "crop")


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
    missing = [k for k in REQUIRED if k not in card]
    if missing:
        raise ModelDirError(model_dir, f"{CARD} lacks {', '.join(missing)}")
    try:
        CropSpec.from_dict(card["crop"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelDirError(model_dir, f"{CARD} has an invalid crop ({exc})") from None
    return card


class AgeModel:
    """A loaded model directory: the card, the crop, and a `predict` on batches of face crops."""

    def __init__(self, model_dir: Path) -> None:
        import tensorflow as tf  # imported here so the numpy-only helpers above stay light

        self.path = Path(model_dir)
        self.card = read_card(self.path)
        self.input_size = int(self.card["input_size"])
        self.ages = np.asarray(self.card["ages"], dtype=np.float32)
        self.crop = CropSpec.from_dict(self.card["crop"])
        saved = self.path / SAVED_MODEL
        if not (saved / "saved_model.pb").is_file():
            raise ModelDirError(self.path, f"{SAVED_MODEL}/saved_model.pb is missing")
        try:
            self._fn = tf.saved_model.load(str(saved)).signatures["serving_default"]
        except Exception as exc:  # TF raises many types for a damaged SavedModel
            raise ModelDirError(self.path, f"cannot load {SAVED_MODEL} ({type(exc).__name__}: {exc})") from None
        self._tf = tf
        try:
            probabilities, _ = self.predict(np.zeros((1, self.input_size, self.input_size, 3), np.float32))
        except Exception as exc:
            raise ModelDirError(self.path, f"the model does not run on a {self.input_size}px input ({exc})") from None
        if probabilities.shape[1] != len(self.ages):
            raise ModelDirError(
                self.path, f"the model outputs {probabilities.shape[1]} classes but {CARD} lists {len(self.ages)} ages"
            )

    def predict(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities [N, K] and expected ages [N] for RGB 0..255 crops [N, S, S, 3]."""
        out = self._fn(image=self._tf.constant(np.asarray(images, np.float32)))
        return out["probabilities"].numpy(), out["expected_age"].numpy()
