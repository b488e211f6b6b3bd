"""Fit and measure how a model's frames of one person are fused (app.model.fusion).

Each validation face of each source (a UTKFace chip in a replicated border, an All-Age-Faces
photo) becomes a camera-like sequence (model_training.sequences), and every frame goes through the
service path (decode → detect → align → model; the face nearest the photo's centre is the
person's). Half the people (every other one) fit the fusion: the softening s so that one frame's
90 % interval holds the true age for 90 % of their frames, then the correlation ρ so that the
fused interval of their sequences' prefixes of 2–F frames does; the other half measure it: per
source and number of frames, the share of people whose fused interval holds their age, the
interval's mean width and the fused answer's MAE, beside the plain product (ρ = 0, s = 1).

Usage: python scripts/fit_fusion.py [MODEL_DIR] [--people N] [--frames F] [--write] [--out FILE]
(--write records s, ρ and the measurement in MODEL_DIR/model.json as `fusion`; needs data/aaf for AAF)
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from app.config import Settings
from app.estimator import Estimator
from app.faces.crop import read_rgb
from app.model.distribution import summarize
from app.model.fusion import Fusion, fit
from model_training.calibrate import nearest, pad_chip
from model_training.dataset import SOURCES, read_manifest
from model_training.sequences import camera_frames

LENGTHS = (1, 2, 4, 8, 16, 24, 32)


def person_sequence(estimator: Estimator, photo: np.ndarray, frames: int, rng: np.random.Generator) -> np.ndarray:
    """The distributions of the frames where a face was found, [found, ages]."""
    h, w = photo.shape[:2]
    out = []
    for frame in camera_frames(photo, frames, rng):
        found = estimator.prediction(frame).faces
        if found:
            out.append(found[nearest([f.box for f in found], w / 2, h / 2)].probabilities)
    return np.array(out)


def measure(sequences: list[np.ndarray], true: np.ndarray, ages: np.ndarray, fusion: Fusion, n: int) -> dict:
    """Coverage, mean width and MAE of the fused answers of the first n frames (people with n found)."""
    keep = [i for i, s in enumerate(sequences) if len(s) >= n]
    summaries = [summarize(fusion.fuse(sequences[i][:n]), ages) for i in keep]
    t = true[keep]
    return {
        "people": len(keep),
        "coverage": float(np.mean([s.low <= a <= s.high for s, a in zip(summaries, t, strict=True)])),
        "width": float(np.mean([s.high - s.low for s in summaries])),
        "mae": float(np.mean([abs(s.age - a) for s, a in zip(summaries, t, strict=True)])),
    }


def main() -> None:
    settings = Settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, nargs="?", default=settings.model_dir)
    parser.add_argument("--people", type=int, default=200, help="validation faces per source (default 200)")
    parser.add_argument("--frames", type=int, default=32, help="frames per sequence (default 32)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=2, help="people estimated side by side (default 2)")
    parser.add_argument("--write", action="store_true", help="record the fit in MODEL_DIR/model.json")
    parser.add_argument("--out", type=Path, help="JSON file for the results")
    args = parser.parse_args()

    estimator = Estimator.from_settings(settings.model_copy(update={"model_threads": 1}), args.model_dir, "onnx")
    ages = estimator.model.ages.astype(np.float64)
    rng = np.random.default_rng(args.seed)
    data: dict[str, tuple[list[np.ndarray], np.ndarray]] = {}
    for source, (root, manifest) in SOURCES.items():
        faces = read_manifest(manifest, "val")
        faces = [faces[i] for i in sorted(rng.choice(len(faces), min(args.people, len(faces)), replace=False))]

        def sequence(k: int, root=root, source=source, faces=faces) -> np.ndarray:
            photo = read_rgb(str(root / faces[k].path))
            photo = pad_chip(photo)[0] if source == "utkface" else photo
            # each person's own seeded draws: the same sequences whatever the threads
            return person_sequence(estimator, photo, args.frames, np.random.default_rng([args.seed, k]))

        with ThreadPoolExecutor(args.threads) as pool:  # one detector per thread (detect.py)
            sequences = list(pool.map(sequence, range(len(faces))))
        print(f"{source}: {len(faces)} people", file=sys.stderr)
        data[source] = (sequences, np.array([f.age for f in faces], np.float64))

    # fit on every other person of both sources, each prefix length counting once per person
    fit_frames, frame_true, fit_seqs, fit_true = [], [], [], []
    for sequences, true in data.values():
        for s, t in list(zip(sequences, true, strict=True))[::2]:
            fit_frames += [frame[None] for frame in s]
            frame_true += [t] * len(s)
            for n in LENGTHS[1:]:
                if len(s) >= n:
                    fit_seqs.append(s[:n])
                    fit_true.append(t)
    fusion = fit(fit_frames, fit_seqs, np.array(frame_true), np.array(fit_true), ages)
    results: dict = {
        "correlation": round(fusion.correlation, 4),
        "softening": round(fusion.softening, 4),
        "fitted_on": f"{len(fit_frames)} frames and {len(fit_seqs)} prefixes (2–{args.frames} frames) of every "
        f"other one of {args.people} validation faces per source ({', '.join(data)}), camera-like sequences "
        f"(model_training.sequences), seed {args.seed}",
        "measured": {},
    }
    for source, (sequences, true) in data.items():
        held = (sequences[1::2], true[1::2])
        results["measured"][source] = {
            str(n): {"fused": measure(*held, ages, fusion, n), "product": measure(*held, ages, Fusion(0.0), n)}
            for n in LENGTHS
            if n <= args.frames
        }
        found = np.mean([len(s) for s in sequences]) / args.frames
        results["measured"][source]["frames_with_a_face"] = round(float(found), 4)
    print(json.dumps(results, indent=2))
    print(f"\ns = {fusion.softening:.3f}, ρ = {fusion.correlation:.3f}")
    print("| source | frames | people | fused: holds · width · MAE | product: holds · width |")
    print("|---|---:|---:|---|---|")
    for source, table in results["measured"].items():
        for n, m in table.items():
            if n.isdigit():
                f, p = m["fused"], m["product"]
                print(f"| {source} | {n} | {f['people']} | {f['coverage']:.1%} · {f['width']:.1f} · {f['mae']:.2f} "
                      f"| {p['coverage']:.1%} · {p['width']:.1f} |")  # fmt: skip
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    if args.write:
        card_path = Path(args.model_dir) / "model.json"
        card = json.loads(card_path.read_text())
        card["fusion"] = results
        card_path.write_text(json.dumps(card, indent=2) + "\n")
        print(f"wrote fusion into {card_path}", file=sys.stderr)


if __name__ == "__main__":
    main()
