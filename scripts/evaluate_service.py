"""The whole service path on the manifest's test faces: decode → detect → crop → model, through
the app's own Predictor, compared with the model alone on the same chips.

UTKFace chips are tight crops; the Haar cascade needs some context around a face, so each chip is
also shown to the service padded with a replicated border (as a face inside a larger photo).

Usage: python scripts/evaluate_service.py [MODEL_DIR] [--limit N] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.config import Settings  # noqa: E402
from app.predictor import build_predictor  # noqa: E402
from model_training.calibrate import nearest, pad_chip  # noqa: E402
from model_training.crop import read_rgb  # noqa: E402
from model_training.dataset import DEFAULT_DATA_ROOT, DEFAULT_MANIFEST, read_manifest  # noqa: E402


def _png(rgb: np.ndarray) -> bytes:
    return cv2.imencode(".png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))[1].tobytes()


def main() -> None:
    settings = Settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, nargs="?", default=settings.model_dir)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--out", type=Path, help="JSON file for the results")
    args = parser.parse_args()

    predictor = build_predictor(settings, args.model_dir)
    model = predictor.model
    faces = read_manifest(args.manifest, args.split)[: args.limit]
    rows = {"model_alone": [], "service_padded": [], "service_bare": []}
    for face in faces:
        chip = read_rgb(str(args.data_root / face.path))
        h, w = chip.shape[:2]
        alone = predictor.predict(_png(chip), detect=False).faces[0].summary.age
        rows["model_alone"].append((face.age, alone))
        padded, pcx, pcy = pad_chip(chip)
        for key, image, cx, cy in (("service_padded", padded, pcx, pcy), ("service_bare", chip, w / 2, h / 2)):
            found = predictor.predict(_png(image), detect=True).faces
            age = found[nearest([f.box for f in found], cx, cy)].summary.age if found else None
            rows[key].append((face.age, age))

    alone_err = {i: abs(t - p) for i, (t, p) in enumerate(rows["model_alone"])}
    results = {"faces": len(faces), "split": args.split, "model": model.card["name"] + " " + model.card["version"]}
    for key, pairs in rows.items():
        detected = [i for i, (_, p) in enumerate(pairs) if p is not None]
        errors = [abs(pairs[i][0] - pairs[i][1]) for i in detected]
        results[key] = {
            "detection_rate": len(detected) / len(pairs),
            "mae_over_detected": float(np.mean(errors)) if errors else None,
            "model_alone_mae_same_faces": float(np.mean([alone_err[i] for i in detected])) if detected else None,
        }
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
