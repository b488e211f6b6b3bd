"""The landmark look's size (YuNetDetector.LANDMARK_FACE, LANDMARK_CONTEXT) against what it buys:
faces found, the service path's MAE, and detection time, on validation faces of both sources.

Each face (a UTKFace chip, an All-Age-Faces photo) is shown padded with a replicated border, as a
face inside a larger photo, to the app's own Estimator with each variant of the look; variants run
side by side on every face, so their times are comparable. Validation only: what is chosen here
must not be chosen on test faces.

Usage: python scripts/landmark_look.py [MODEL_DIR] [--limit N] [--variants 144x1.4 120x1.2 ...]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from app.config import Settings
from app.estimator import Estimator
from app.faces.crop import read_rgb
from model_training.calibrate import nearest, pad_chip
from model_training.dataset import SOURCES, read_manifest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, nargs="?", default=Settings().model_dir)
    parser.add_argument("--limit", type=int, default=500, help="validation faces of each source")
    parser.add_argument("--variants", nargs="+", default=["144x1.4", "144x1.3334"])
    args = parser.parse_args()
    cv2.setNumThreads(1)
    estimators = {}
    for variant in args.variants:
        face, context = variant.split("x")
        estimator = Estimator.from_settings(Settings(model_threads=1, model_precision="float"), args.model_dir)
        estimator.detector.LANDMARK_FACE, estimator.detector.LANDMARK_CONTEXT = int(face), float(context)
        estimators[variant] = estimator
    print("| source | look (face px × context) | found | MAE over found | detect ms a face |\n|---|---|---:|---:|---:|")
    for source, (root, manifest) in SOURCES.items():
        faces = read_manifest(manifest, "val")[: args.limit]
        errors = {v: [] for v in estimators}
        seconds = dict.fromkeys(estimators, 0.0)
        for face in faces:
            image, cx, cy = pad_chip(read_rgb(str(root / face.path)))
            for variant, estimator in estimators.items():
                start = time.perf_counter()
                boxes, landmarks = estimator.detections(image, True, 10)
                seconds[variant] += time.perf_counter() - start
                found = estimator.prediction(image, detect=True).faces
                if found:
                    errors[variant].append(abs(found[nearest([f.box for f in found], cx, cy)].summary.age - face.age))
        for variant in estimators:
            print(
                f"| {source} | {variant} | {len(errors[variant])}/{len(faces)} | {np.mean(errors[variant]):.3f} "
                f"| {seconds[variant] / len(faces) * 1000:.1f} |"
            )


if __name__ == "__main__":
    main()
