"""Which layers lose most to int8: mean |Δ age| of the int8 graph against the float one when a group
of layers is kept float (the head always is), on validation faces of both sources.

Usage: python scripts/int8_probe.py models/dex-mobilenet_v2/model.onnx [--faces 200]
           [--variants none depthwise linear_convs adds last_quarter first1 first2 first6 first_quarter]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnx

from app.model.model_dir import onnx_session
from model_training.evaluate import load_chips
from model_training.quantize import (
    calibration_faces,
    float_only_nodes,
    parity_faces,
    prepared,
    probabilities_of,
    quantized,
)


def variants(model: onnx.ModelProto) -> dict[str, list[str]]:
    """Names of the nodes each variant keeps float, beyond the head."""
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    group = {n.name: next((a.i for a in n.attribute if a.name == "group"), 1) for n in convs}
    head = set(float_only_nodes(model, 0))
    out = {
        "none": [],
        "depthwise": [n.name for n in convs if group[n.name] > 1],
        "linear_convs": [  # convolutions whose output no activation follows (MobileNetV2's projections)
            n.name
            for n in convs
            if group[n.name] == 1 and not any(c.op_type == "Clip" for o in n.output for c in consumers.get(o, []))
        ],
        "adds": [n.name for n in model.graph.node if n.op_type == "Add" and n.name not in head],
        "last_quarter": [n.name for n in convs[-len(convs) // 4 :]],
        "first_quarter": [n.name for n in convs[: len(convs) // 4]],
    }
    for k in (1, 2, 3, 4, 6, 9):
        out[f"first{k}"] = [n.name for n in convs[:k]]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("onnx_file", type=Path)
    parser.add_argument("--faces", type=int, default=200, help="validation faces a source")
    parser.add_argument("--manifest", type=Path, default=Path("data/faces/manifest.csv"))
    parser.add_argument("--data-root", type=Path, default=Path("data/faces"))
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--variants", nargs="+", default=["none", "depthwise", "first1", "first2", "first6"])
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    prepared_path, int8_path = tmp / "prepared.onnx", tmp / "int8.onnx"
    model = prepared(args.onnx_file, prepared_path)
    ages = np.arange(101.0)
    calibration = load_chips(calibration_faces(args.manifest, 200), args.data_root, args.size)
    faces = parity_faces(args.manifest, args.faces)
    images = load_chips(faces, args.data_root, args.size)
    sources = np.array([f.source for f in faces])
    float_age = probabilities_of(onnx_session(prepared_path, threads=1), images) @ ages
    kept = variants(model)
    print("| kept float (beyond the head) | nodes | " + " | ".join(f"{s} mean abs Δ age" for s in sorted(set(sources))))
    print("|---|---:|" + "---:|" * len(set(sources)))
    for name in args.variants:
        quantized(prepared_path, int8_path, calibration, "minmax", float_only_nodes(model, 0) + kept[name])
        delta = np.abs(probabilities_of(onnx_session(int8_path, threads=1), images) @ ages - float_age)
        cells = " | ".join(f"{delta[sources == s].mean():.3f}" for s in sorted(set(sources)))
        print(f"| {name} | {len(kept[name])} | {cells} |", flush=True)


if __name__ == "__main__":
    main()
