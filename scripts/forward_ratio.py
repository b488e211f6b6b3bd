"""How many times the first model's forward pass each other model's takes, on a noisy machine.

bench.py times one model at a time; when the machine's speed drifts between its runs (docs/
performance.md, 6 December), the ratio of two such runs drifts with it. Here the models take
turns, one face each round, on one ONNX Runtime thread, and the ratio is the median over rounds of
each round's ratio: a slow minute slows both sides of it.

A model is MODEL_DIR, served as the service serves it (its int8 graph where its card says that
passed), or MODEL_DIR:float, its float graph (MODEL_PRECISION=float).

    python scripts/forward_ratio.py models/dex-mobilenet_v2:float models/dex-mobilenet_v2 models/dex-age
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from app.model.model_dir import AgeModel, ModelDirError

WARMUP = 10


def interleaved(model_dirs: list[str], rounds: int, seed: int = 0) -> list[dict]:
    """Per model: median and 10th-percentile ms of one face, and the median per-round ratio to the first.
    Each model runs as the service runs it (AgeModel.predict, ONNX Runtime, one thread)."""
    models = []
    for spec in model_dirs:
        path, _, precision = str(spec).partition(":")
        models.append(AgeModel(Path(path), runtime="onnx", threads=1, precision=precision or "auto"))
    sizes = {m.input_size for m in models}
    if len(sizes) != 1:
        raise SystemExit(f"the models take different input sizes {sorted(sizes)}: compare like with like")
    size = sizes.pop()
    face = np.random.default_rng(seed).random((1, size, size, 3), dtype=np.float32)
    times = np.zeros((WARMUP + rounds, len(models)))
    for r in range(WARMUP + rounds):
        for i, model in enumerate(models):
            start = time.perf_counter()
            model.predict(face)
            times[r, i] = time.perf_counter() - start
    times = times[WARMUP:] * 1000
    return [
        {
            "model": str(d),
            "median_ms": float(np.median(times[:, i])),
            "p10_ms": float(np.percentile(times[:, i], 10)),
            "ratio_to_first": float(np.median(times[:, i] / times[:, 0])),
        }
        for i, d in enumerate(model_dirs)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dirs", nargs="+", help="MODEL_DIR or MODEL_DIR:float; the first is the reference")
    parser.add_argument("--rounds", type=int, default=140)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    try:
        rows = interleaved(args.model_dirs, args.rounds)
    except (ModelDirError, ValueError) as exc:
        raise SystemExit(str(exc)) from None
    print("| model | median ms | 10th percentile ms | times the first (median per round) |\n|---|---:|---:|---:|")
    for row in rows:
        print(f"| {row['model']} | {row['median_ms']:.1f} | {row['p10_ms']:.1f} | {row['ratio_to_first']:.2f} |")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
