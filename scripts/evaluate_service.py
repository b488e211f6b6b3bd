"""The whole service path on the manifest's test faces: decode → detect → crop → model, through
the app's own Estimator, compared with the model alone on the same faces.

Each source image (a UTKFace chip, an All-Age-Faces photo) is shown to the service padded with a
replicated border (as a face inside a larger photo) and, unless --framing padded, bare. Each
detector is run with the crop the model directory holds for it. "one face" is the share of images
where exactly one face was found. The model alone sees each face as it was framed for training:
the image itself (a UTKFace chip), or its crop in --alone-root (the aligned-face cache, e.g.
data/faces/aaf for a model trained on it).

Usage: python scripts/evaluate_service.py [MODEL_DIR] [--detector yunet dnn haar] [--limit N] [--out FILE]
           [--manifest CSV --data-root DIR] [--alone-root DIR] [--framing padded bare]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from app.config import Settings
from app.estimator import Estimator
from app.faces.crop import crop_whole, read_rgb
from app.faces.detectors import DETECTORS
from model_training.calibrate import nearest, pad_chip
from model_training.dataset import DEFAULT_DATA_ROOT, DEFAULT_MANIFEST, read_manifest


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
    parser.add_argument("--detector", nargs="+", default=list(DETECTORS), choices=DETECTORS)
    parser.add_argument("--framing", nargs="+", default=["padded", "bare"], choices=["padded", "bare"])
    parser.add_argument("--alone-root", type=Path, help="where the model alone reads each face (default --data-root)")
    parser.add_argument("--out", type=Path, help="JSON file for the results")
    args = parser.parse_args()

    faces = read_manifest(args.manifest, args.split)[: args.limit]
    chips = [read_rgb(str(args.data_root / face.path)) for face in faces]
    predictors = {
        d: Estimator.from_settings(settings.model_copy(update={"detector": d}), args.model_dir) for d in args.detector
    }
    model = next(iter(predictors.values())).model
    own = chips if args.alone_root is None else [read_rgb(str(args.alone_root / face.path)) for face in faces]
    alone = [model.predict(crop_whole(image, model.input_size)[None])[1][0] for image in own]
    alone_err = [abs(float(a) - f.age) for a, f in zip(alone, faces, strict=True)]
    results = {
        "faces": len(faces),
        "split": args.split,
        "model": model.card["name"] + " " + model.card["version"],
        "model_alone_mae": float(np.mean(alone_err)),
    }
    for name, predictor in predictors.items():
        for key in args.framing:
            ages, counts = [], []
            for chip in chips:
                h, w = chip.shape[:2]
                image, cx, cy = pad_chip(chip) if key == "padded" else (chip, w / 2, h / 2)
                found = predictor.prediction(_png(image), detect=True).faces
                counts.append(len(found))
                ages.append(found[nearest([f.box for f in found], cx, cy)].summary.age if found else None)
            detected = [i for i, a in enumerate(ages) if a is not None]
            results[f"{name}_{key}"] = {
                "detection_rate": len(detected) / len(faces),
                "one_face_rate": sum(c == 1 for c in counts) / len(faces),
                "mae_over_detected": float(np.mean([abs(ages[i] - faces[i].age) for i in detected]))
                if detected
                else None,
                "model_alone_mae_same_faces": float(np.mean([alone_err[i] for i in detected])) if detected else None,
            }
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
