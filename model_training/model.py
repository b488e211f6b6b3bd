"""The DEX model: raw RGB face crop → backbone → pooled features → softmax over ages → E[age].

The backbone's input normalisation is part of the graph, so callers feed RGB 0..255 and never
need to know which normalisation a backbone wants.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers, ops

from model_training.config import Recipe
from model_training.efficientnet_lite import VARIANTS, EfficientNetLite0, EfficientNetLite1, EfficientNetLite2

BACKBONES = {
    "mobilenet_v2": keras.applications.MobileNetV2,
    "resnet50": keras.applications.ResNet50,
    # "imagenet" is a file carried here: no download
    "efficientnet_lite0": EfficientNetLite0,
    "efficientnet_lite1": EfficientNetLite1,
    "efficientnet_lite2": EfficientNetLite2,
}
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


class WeightsUnavailable(RuntimeError):
    """ImageNet weights could not be downloaded (typically: no internet)."""


@keras.saving.register_keras_serializable(package="dex")
class Normalize(layers.Layer):
    """Map RGB 0..255 to what the backbone's weights were trained on."""

    def __init__(self, mode: str, **kwargs) -> None:
        super().__init__(**kwargs)
        if mode not in {"tf", "torch", "caffe"}:
            raise ValueError(f"unknown normalization {mode!r}: use tf, torch or caffe")
        self.mode = mode

    def call(self, x):
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            return (x / 255.0 - np.array(_IMAGENET_MEAN, "float32")) / np.array(_IMAGENET_STD, "float32")
        return ops.flip(x, axis=-1) - np.array(_CAFFE_MEAN_BGR, "float32")

    def get_config(self) -> dict:
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="dex")
class ExpectedValue(layers.Layer):
    """Σ pᵢ·ageᵢ: the DEX answer, computed in the graph so every runtime returns it."""

    def __init__(self, ages: list[int], **kwargs) -> None:
        super().__init__(**kwargs)
        self.ages = [int(a) for a in ages]

    def call(self, probabilities):
        return ops.sum(probabilities * np.array(self.ages, "float32"), axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "ages": self.ages}


@keras.saving.register_keras_serializable(package="dex")
class Temperature(layers.Layer):
    """softmax(log p / T) in the graph: the calibration fitted at export (see distribution.py)."""

    def __init__(self, temperature: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.temperature = float(temperature)

    def call(self, probabilities):
        return ops.softmax(ops.log(ops.clip(probabilities, 1e-12, 1.0)) / self.temperature, axis=-1)

    def get_config(self) -> dict:
        return {**super().get_config(), "temperature": self.temperature}


@keras.saving.register_keras_serializable(package="dex")
class Smoothing(layers.Layer):
    """p @ kernel in the graph: the output smoothing of distribution.smoothing_kernel."""

    def __init__(self, kernel, **kwargs) -> None:
        super().__init__(**kwargs)
        self.kernel = np.asarray(kernel, dtype=np.float32)

    def call(self, probabilities):
        return ops.matmul(probabilities, ops.convert_to_tensor(self.kernel))

    def get_config(self) -> dict:
        return {**super().get_config(), "kernel": self.kernel.tolist()}


def with_temperature(
    model: keras.Model, temperature: float, ages: list[int], kernel: np.ndarray | None = None
) -> keras.Model:
    """The model with its distributions calibrated by `temperature` (then smoothed by `kernel`, if
    given), the expected age recomputed."""
    probabilities = Temperature(temperature, name="calibrated_probabilities")(model.output["probabilities"])
    if kernel is not None:
        probabilities = Smoothing(kernel, name="smoothed_probabilities")(probabilities)
    expected_age = ExpectedValue(ages, name="calibrated_expected_age")(probabilities)
    return keras.Model(model.input, {"probabilities": probabilities, "expected_age": expected_age}, name=model.name)


def ensemble(members: list[keras.Model], ages: list[int], name: str) -> keras.Model:
    """One graph of several DEX networks on one input: the mean of their distributions, and its
    expected age. Networks of different backbones err differently, so the mean errs less (DEX
    itself averaged 20); each member keeps its own normalisation inside it."""
    image = keras.Input(members[0].input.shape[1:], name="image")
    for i, member in enumerate(members):  # unique names inside the graph, whatever the members were called
        member.name = f"member_{i}"
    probabilities = layers.Average(name="probabilities")([member(image)["probabilities"] for member in members])
    expected_age = ExpectedValue(ages, name="expected_age")(probabilities)
    return keras.Model(image, {"probabilities": probabilities, "expected_age": expected_age}, name=name)


def build_backbone(name: str, weights: str, input_size: int) -> keras.Model:
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}: use one of {sorted(BACKBONES)}")
    shape = (input_size, input_size, 3)
    if weights == "none":
        return BACKBONES[name](include_top=False, weights=None, input_shape=shape, pooling="avg")
    if weights == "imagenet" and name in VARIANTS:  # carried here, checked by its sha256
        return BACKBONES[name](include_top=False, weights="imagenet", input_shape=shape, pooling="avg")
    if weights == "imagenet":
        try:
            return BACKBONES[name](include_top=False, weights="imagenet", input_shape=shape, pooling="avg")
        except Exception as exc:  # Keras raises a bare Exception for a failed download
            raise WeightsUnavailable(
                f"could not download Keras' ImageNet weights for {name} ({exc}). Without internet, "
                f"pass a local weights file instead (recipe key `weights` or --weights PATH; for "
                f"mobilenet_v2 see ../shared/weights/README.md), or --weights none to start from scratch."
            ) from exc
    if not Path(weights).is_file():
        raise FileNotFoundError(f"weights file not found: {weights}")
    backbone = BACKBONES[name](include_top=False, weights=None, input_shape=shape, pooling="avg")
    backbone.load_weights(weights)
    return backbone


def build_model(recipe: Recipe, weights: str | None = None) -> keras.Model:
    """The DEX network; `weights` overrides the recipe's backbone initialisation."""
    size = recipe.input_size
    backbone = build_backbone(recipe.backbone, weights or recipe.weights, size)
    backbone.name = "backbone"
    image = keras.Input((size, size, 3), name="image")
    x = Normalize(recipe.normalization, name="normalize")(image)
    x = backbone(x)
    x = layers.Dropout(recipe.dropout, name="dropout")(x)
    probabilities = layers.Dense(len(recipe.ages), activation="softmax", name="probabilities")(x)
    expected_age = ExpectedValue(recipe.ages, name="expected_age")(probabilities)
    return keras.Model(image, {"probabilities": probabilities, "expected_age": expected_age}, name=recipe.name)


def average_weights(model: keras.Model, files: list[Path]) -> None:
    """Give `model` the mean of the weights in `files` (one architecture): a model soup."""
    loaded = []
    for path in files:
        model.load_weights(path)
        loaded.append(model.get_weights())
    model.set_weights([np.mean(ws, axis=0).astype(ws[0].dtype) for ws in zip(*loaded, strict=True)])


def adjust_prior(model: keras.Model, prior: np.ndarray, strength: float) -> None:
    """Logit adjustment (Menon et al., ICLR 2021): the head's bias minus strength · log prior, so
    that the answer leans less on how often each age was seen in training and more on the face.
    Centred, so the bias keeps its level (the softmax is blind to it); only the head changes."""
    head = model.get_layer("probabilities")
    kernel, bias = head.get_weights()
    log_prior = np.log(np.maximum(prior, 1e-12))
    head.set_weights([kernel, (bias - strength * (log_prior - log_prior.mean())).astype(bias.dtype)])


def set_trainable(model: keras.Model, part: str) -> None:
    """Freeze the backbone ("head") or unfreeze it ("all") with every BatchNormalization frozen.

    In Keras 3 a trainable backbone called with training=False still runs its batch norm on batch
    statistics while the outer model trains, and fine-tuning collapses; a non-trainable BN layer
    always runs in inference mode.
    """
    backbone = model.get_layer("backbone")
    backbone.trainable = part == "all"
    if part == "all":
        for layer in backbone.layers:
            if isinstance(layer, layers.BatchNormalization):
                layer.trainable = False


def warm_start(model: keras.Model, source: Path) -> None:
    """Start every weight of `model` from a trained model of the same architecture — a Keras
    `.weights.h5`, or a model directory's SavedModel (matched by layer and variable name), at any
    input size: the backbone is fully convolutional, so 128 px weights can start a 224 px run."""
    source = Path(source)
    if source.suffix == ".h5":
        model.load_weights(source)
        return
    import tensorflow as tf

    loaded = tf.saved_model.load(str(source / "saved_model"))
    saved = {v.name.removesuffix(":0"): v for v in loaded.signatures["serving_default"].variables}
    for variable in model.weights:
        if "seed_generator" in variable.path:  # dropout's random state, not a weight
            continue
        key = "/".join(variable.path.split("/")[-2:])
        if key not in saved or tuple(saved[key].shape) != tuple(variable.shape):
            raise ValueError(f"{source}: no weight {key} of shape {tuple(variable.shape)} to start from")
        variable.assign(saved[key].numpy())
