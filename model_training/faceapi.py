"""face-api.js's age network, ported to Keras: the second teacher of the distilled model.

`@vladmandic/face-api` 1.7.15 (MIT) ships `model/age_gender_model.bin` and its manifest: a
TinyXception (a separable-convolution net of two entry reduction blocks, two middle blocks, an exit
reduction block and a separable convolution, 112×112 RGB input) whose pooled 512 features feed two
fully connected heads, an age (one number) and a gender. Its weights are stored as 8-bit, each
tensor with a scale and a minimum in the manifest (value = min + scale · q); the biases as float32.
The carried copy (model_training/weights/faceapi/, with its licence) is checked by sha256 at load.

The port follows the package's `TinyXception.ts` and `AgeGenderNet.ts` op for op (TensorFlow's
"same" padding, which Keras shares); `tests/model_training/test_faceapi.py` holds it to the Node
package's own answers on real faces (stored by scripts/faceapi_reference/). Its framing is its
own: a face box, squared and resized to 112 px; `FRAMING` maps our aligned crop onto it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import keras
import numpy as np

from app.faces.crop import crop_square

WEIGHTS_DIR = Path(__file__).parent / "weights" / "faceapi"
MANIFEST = "age_gender_model-weights_manifest.json"
BINARY = "age_gender_model.bin"
SHA256 = {
    MANIFEST: "74b60bf3ebf981bf4e661e9cca3a185614e10b25d797118b62e2a68d3ff2569f",
    BINARY: "49f92bbc0afef2342c4385e4a2b0acb6d7a727c6f0aa539499719a81acf9abaa",
}
INPUT_SIZE = 112
MEAN_RGB = (122.782, 117.001, 104.298)  # TinyXception.ts: subtracted, then divided by 255
MAIN_BLOCKS = 2
PACKAGE = "@vladmandic/face-api@1.7.15"
LICENSE = "MIT"
# Our aligned 224-px crop (the YuNet template) frames more of the head than face-api's box of the 68
# landmarks: the share of the crop's side cut around its centre, and the centre's shift down as a
# share of the side, before resizing to 112 px. Chosen on both sources' validation splits
# (scripts/faceapi_framing.py; docs/experiments.md, Model 6.0).
FRAMING = {"side": 0.9, "shift_y": 0.0}


def read_weights(folder: Path = WEIGHTS_DIR) -> dict[str, np.ndarray]:
    """Every tensor of the manifest, dequantized to float32, by its name; refuses files whose sha256
    is not the carried one."""
    for name, digest in SHA256.items():
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"face-api's weights are missing: {path} (npm pack {PACKAGE}, model/{name})")
        actual = hashlib.sha256(path.read_bytes()).hexdigest()
        if actual != digest:
            raise ValueError(f"{path}: sha256 {actual} is not the carried {digest}")
    groups = json.loads((folder / MANIFEST).read_text())
    data = (folder / BINARY).read_bytes()
    tensors, offset = {}, 0
    for spec in (w for g in groups for w in g["weights"]):
        count = int(np.prod(spec["shape"]))
        quant = spec.get("quantization")
        if quant:
            if quant["dtype"] != "uint8":
                raise ValueError(f"{spec['name']}: quantization {quant['dtype']} is not handled")
            q = np.frombuffer(data, np.uint8, count, offset).astype(np.float32)
            values = q * np.float32(quant["scale"]) + np.float32(quant["min"])
            offset += count
        else:
            values = np.frombuffer(data, np.float32, count, offset).copy()
            offset += 4 * count
        tensors[spec["name"]] = values.reshape(spec["shape"])
    if offset != len(data):
        raise ValueError(f"{BINARY}: {len(data)} bytes, the manifest describes {offset}")
    return tensors


def _separable(x, w: dict, prefix: str, name: str):
    layer = keras.layers.SeparableConv2D(w[f"{prefix}/pointwise_filter"].shape[-1], 3, padding="same", name=name)
    out = layer(x)
    layer.set_weights([w[f"{prefix}/depthwise_filter"], w[f"{prefix}/pointwise_filter"], w[f"{prefix}/bias"]])
    return out


def _conv(x, w: dict, prefix: str, stride: int, name: str):
    filters = w[f"{prefix}/filters"]
    layer = keras.layers.Conv2D(filters.shape[-1], filters.shape[:2], strides=stride, padding="same", name=name)
    out = layer(x)
    layer.set_weights([filters, w[f"{prefix}/bias"]])
    return out


def _reduction(x, w: dict, prefix: str, activate_input: bool = True):
    tag = prefix.replace("/", "_")
    out = keras.layers.ReLU()(x) if activate_input else x
    out = _separable(out, w, f"{prefix}/separable_conv0", f"{tag}_sep0")
    out = _separable(keras.layers.ReLU()(out), w, f"{prefix}/separable_conv1", f"{tag}_sep1")
    out = keras.layers.MaxPooling2D(3, 2, padding="same")(out)
    return keras.layers.Add()([out, _conv(x, w, f"{prefix}/expansion_conv", 2, f"{tag}_expansion")])


def _main_block(x, w: dict, prefix: str):
    tag = prefix.replace("/", "_")
    out = x
    for i in range(3):
        out = _separable(keras.layers.ReLU()(out), w, f"{prefix}/separable_conv{i}", f"{tag}_sep{i}")
    return keras.layers.Add()([out, x])


def build_age_net(folder: Path = WEIGHTS_DIR) -> keras.Model:
    """The age network: [N, 112, 112, 3] RGB 0..255 → [N] ages, as face-api computes them."""
    w = read_weights(folder)
    inputs = keras.Input((INPUT_SIZE, INPUT_SIZE, 3), name="image")
    x = keras.layers.Rescaling(1 / 255, offset=-np.array(MEAN_RGB) / 255)(inputs)
    x = keras.layers.ReLU()(_conv(x, w, "entry_flow/conv_in", 2, "conv_in"))
    x = _reduction(x, w, "entry_flow/reduction_block_0", activate_input=False)
    x = _reduction(x, w, "entry_flow/reduction_block_1")
    for i in range(MAIN_BLOCKS):
        x = _main_block(x, w, f"middle_flow/main_block_{i}")
    x = _reduction(x, w, "exit_flow/reduction_block")
    x = keras.layers.ReLU()(_separable(x, w, "exit_flow/separable_conv", "exit_sep"))
    x = keras.layers.Flatten()(keras.layers.AveragePooling2D(7, 2, padding="valid")(x))
    age_layer = keras.layers.Dense(1, name="age")
    age = keras.layers.Reshape(())(age_layer(x))
    age_layer.set_weights([w["fc/age/weights"], w["fc/age/bias"]])
    return keras.Model(inputs, age, name="faceapi_age")


def faceapi_input(aligned: np.ndarray, framing: dict | None = None) -> np.ndarray:
    """Our aligned crop (uint8 RGB, any square size) → face-api's 112-px input: the central square of
    `framing["side"]` of the crop's side, moved down by `framing["shift_y"]` of it, resized."""
    framing = framing or FRAMING
    size = aligned.shape[0]
    return crop_square(aligned, size / 2, size / 2 + framing["shift_y"] * size, framing["side"] * size, INPUT_SIZE)
