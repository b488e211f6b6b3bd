"""Distillation: a student taught by teachers on the very views it is trained on.

"Patient and consistent" teaching (Beyer et al., CVPR 2022): a teacher's answer is only a good
target for the augmented view it was computed on. So each training face has `views` fixed
augmentations, each drawn from a seed of its own (the face's sha256 and the view's number):
`augmented_view` makes the same pixels every time. The teachers label every view once
(`label_views`, resumable, kept in data/distill/), and training draws one of a face's views at
random each time it meets the face, with the teachers' answers for exactly those pixels.

The teachers: a model directory (its distribution over the ages) and face-api.js's age network
(model_training.faceapi: one number, taught as a discretised Gaussian around it, of the width its
errors have on validation). The training target is the mixture

    (1 − w_t − w_f) · label distribution + w_t · teacher distribution + w_f · Gaussian(face-api age, σ_f)

and cross-entropy is linear in its target, so this is the weighted sum of the three cross-entropies
(the KL to each teacher up to a constant).
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import cv2
import numpy as np

from app.faces.crop import read_rgb
from model_training.config import Augment
from model_training.dataset import Face
from model_training.pipeline import random_crop

CACHE = Path("data/distill")
CHUNK = 1024  # faces per labelled file: the unit a stopped labelling resumes from


def view_seed(face: Face, view: int) -> int:
    """The seed of one view of one face: the same across runs, machines and manifests."""
    digest = hashlib.sha256(f"{face.sha256}:{view}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def augmented_view(image: np.ndarray, seed: int, augment: Augment, size: int) -> np.ndarray:
    """One training view of a face chip (uint8 RGB): the random resized square crop and what other
    cameras do (pipeline's crop and `degrade`), then the flip, rotation, brightness, contrast and
    saturation that training applies, all drawn from one seeded generator: deterministic."""
    rng = np.random.default_rng(seed)
    out = random_crop(image, rng, augment, size)
    if augment.flip and rng.random() < 0.5:
        out = out[:, ::-1]
    out = out.astype(np.float32)
    if augment.rotation_deg > 0:
        matrix = cv2.getRotationMatrix2D(
            (size / 2, size / 2), rng.uniform(-augment.rotation_deg, augment.rotation_deg), 1
        )
        out = cv2.warpAffine(out, matrix, (size, size), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    if augment.brightness > 0:
        out = out + rng.uniform(-augment.brightness, augment.brightness) * 255.0
    if augment.contrast > 0:
        mean = out.mean(axis=(0, 1), keepdims=True)
        out = (out - mean) * rng.uniform(1 - augment.contrast, 1 + augment.contrast) + mean
    if augment.saturation > 0:
        grey = out @ np.array([0.299, 0.587, 0.114], np.float32)
        out = grey[..., None] + (out - grey[..., None]) * rng.uniform(1 - augment.saturation, 1 + augment.saturation)
    return np.clip(out, 0, 255).round().astype(np.uint8)


def labels_dir(faces: list[Face], augment: Augment, size: int, teacher: Path, cache: Path = CACHE) -> Path:
    """Where the labels of these faces, views and teacher live: a digest of all that shapes them."""
    from model_training.faceapi import FRAMING

    card = json.loads((Path(teacher) / "model.json").read_text())
    key = [augment.__dict__, size, card["name"], card["version"], FRAMING, [f.sha256 for f in faces]]
    return cache / hashlib.sha256(json.dumps(key, default=list).encode()).hexdigest()[:16]


def label_views(
    faces: list[Face],
    data_root: Path,
    augment: Augment,
    size: int,
    views: int,
    teacher: Path,
    cache: Path = CACHE,
    threads: int = 2,
    log=print,
) -> Path:
    """Label every view of every face with both teachers, in files of CHUNK faces
    (`view-V-chunk-C.npz`: `probabilities` float16 [n, K] of the teacher model, `faceapi` float32 [n]
    of face-api's age). Files already written are kept: a stopped labelling resumes. Returns the folder."""
    from concurrent.futures import ThreadPoolExecutor

    from app.model.model_dir import AgeModel
    from model_training.faceapi import FRAMING, build_age_net, faceapi_input

    out = labels_dir(faces, augment, size, teacher, cache)
    out.mkdir(parents=True, exist_ok=True)
    (out / "labels.json").write_text(
        json.dumps(
            {
                "teacher": str(teacher),
                "faceapi_framing": FRAMING,
                "views": views,
                "size": size,
                "faces": len(faces),
                "augment": augment.__dict__,
                "paths": [f.path for f in faces],
            },
            default=list,
        )
    )
    model = AgeModel(Path(teacher), runtime="onnx", threads=threads)
    faceapi = build_age_net()

    def view_of(args: tuple[Face, int]) -> np.ndarray:
        face, view = args
        return augmented_view(read_rgb(str(Path(data_root) / face.path)), view_seed(face, view), augment, size)

    with ThreadPoolExecutor(threads) as pool:
        for view in range(views):
            for start in range(0, len(faces), CHUNK):
                path = out / f"view-{view}-chunk-{start // CHUNK}.npz"
                if path.is_file():
                    continue
                began = time.monotonic()
                chunk = faces[start : start + CHUNK]
                images = np.stack(list(pool.map(view_of, [(f, view) for f in chunk])))
                probabilities = np.concatenate(
                    [model.predict(images[i : i + 64])[0] for i in range(0, len(images), 64)]
                )
                small = np.stack([faceapi_input(im) for im in images]).astype(np.float32)
                ages = faceapi.predict(small, batch_size=128, verbose=0)
                partial = path.with_suffix(".partial.npz")
                np.savez(partial, probabilities=probabilities.astype(np.float16), faceapi=ages.astype(np.float32))
                partial.replace(path)
                log(f"view {view} faces {start + len(chunk)}/{len(faces)}: {time.monotonic() - began:.0f} s")
    return out


def read_labels(folder: Path, faces: int, views: int) -> tuple[np.ndarray, np.ndarray]:
    """The teachers' answers: probabilities float16 [views, faces, K] and face-api ages [views, faces]."""
    probabilities, ages = [], []
    for view in range(views):
        chunks = [np.load(folder / f"view-{view}-chunk-{c}.npz") for c in range(-(-faces // CHUNK))]
        probabilities.append(np.concatenate([c["probabilities"] for c in chunks]))
        ages.append(np.concatenate([c["faceapi"] for c in chunks]))
    probabilities, ages = np.stack(probabilities), np.stack(ages)
    if probabilities.shape[1] != faces:
        raise ValueError(f"{folder}: labels for {probabilities.shape[1]} faces, not {faces}")
    return probabilities, ages


def gaussian_targets(centres: np.ndarray, ages: np.ndarray, sigma: float) -> np.ndarray:
    """[..., K]: a discretised Gaussian of width `sigma` around each centre, over `ages`."""
    rows = np.exp(-0.5 * ((ages - centres[..., None]) / sigma) ** 2)
    return (rows / rows.sum(axis=-1, keepdims=True)).astype(np.float32)
