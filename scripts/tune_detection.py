"""Detector settings against recall, phantoms and speed, on the test photos, larger canvases and
validation chips (never the test split).

For each detector setting prints the faces found per photo (the expected count in brackets) with
the median detection time, and on validation chips — padded with a replicated border as a face
inside a photo, and bare — the share with at least one face and with exactly one (a second box
on a one-face chip is a phantom). For the DNN detector each confidence threshold is read off one
run at the lowest threshold: suppression keeps the surest boxes first, so a higher threshold only
drops boxes.

`--smallest` prints instead, for the default settings of each detector, the smallest face found
on 640×480, 1920×1080 and 4000×3000 canvases: grace_hopper.bmp's face pasted ever smaller.
`--tilt` prints YuNet's eye line on grace_hopper.bmp rotated by 20° and 30° (its face about 200
and about 60 px wide), and its detection time on the canvases, with and without the second look
at each small face's landmarks.

Usage: python scripts/tune_detection.py [--chips N] [--detector yunet|dnn|haar] [--smallest] [--tilt]
"""

from __future__ import annotations

import argparse
import itertools
import random
from pathlib import Path

import cv2

from app import imaging
from app.faces.crop import read_rgb
from app.faces.detectors import DETECTORS, make_detector
from app.faces.dnn import DnnDetector
from app.faces.haar import HaarDetector
from app.faces.yunet import YuNetDetector
from harness.photos import median_ms, photos
from model_training.calibrate import pad_chip
from model_training.dataset import DEFAULT_DATA_ROOT, DEFAULT_MANIFEST, TEST_IMAGES, read_manifest

EXPECTED = {  # faces a person counts on each photo (bench.photos() pastes face.jpg and grace_hopper.bmp)
    "cat.bmp": 0,
    "face.jpg": 4,
    "grace_hopper.bmp": 1,
    "canvas-640x480.jpg": 4,
    "canvas-1920x1080.jpg": 5,
    "canvas-4000x3000.jpg": 5,
}
THRESHOLDS = (0.3, 0.5, 0.7, 0.9)


def chip_rates(scores: list[list[float]], threshold: float) -> str:
    counts = [sum(s >= threshold for s in chip) for chip in scores]
    n = len(counts)
    return f"{sum(c >= 1 for c in counts) / n:.1%} / {sum(c == 1 for c in counts) / n:.1%}"


def smallest_faces(detectors: list[str]) -> None:
    """The smallest face each detector finds on canvases of three sizes (its default settings)."""
    import numpy as np
    from PIL import Image

    hopper = Image.open(TEST_IMAGES / "grace_hopper.bmp")
    face_px = 180  # grace_hopper.bmp's face box is about 180 px wide in its 512 px photo
    sizes = ((640, 480), (1920, 1080), (4000, 3000))
    print("| detector | " + " | ".join(f"{w}×{h}: smallest face found" for w, h in sizes) + " |")
    print("|---|" + "---:|" * len(sizes))
    for name in detectors:
        detector, cells = make_detector(name), []
        for w, h in sizes:
            found = None
            for face in range(120, 9, -2):  # down from a face every detector finds
                canvas = Image.new("RGB", (w, h), (118, 124, 130))
                f = face / face_px
                canvas.paste(hopper.resize((round(hopper.width * f), round(hopper.height * f))), (w // 3, h // 3))
                if not detector.detect(np.asarray(canvas)):
                    break
                found = face
            cells.append(f"{found} px" if found else "none")
        print(f"| {name} | " + " | ".join(cells) + " |", flush=True)


def tilts() -> None:
    """YuNet's eye-line angle on a rotated face, and its time, with and without the landmark look."""
    import numpy as np

    photo = imaging.decode((Path(__file__).resolve().parents[2] / "shared" / "data" / "test-images" /
                            "grace_hopper.bmp").read_bytes(), 10**8)  # fmt: skip
    photo = cv2.copyMakeBorder(photo, 200, 200, 200, 200, cv2.BORDER_REPLICATE)
    h, w = photo.shape[:2]
    canvases = {n: imaging.decode(d, 10**9) for n, d in photos().items() if n.startswith("canvas")}

    class WithoutLook(YuNetDetector):
        LANDMARK_FACE = 0  # no face is small enough for a second look

    print("| landmarks | " + " | ".join(f"{a}°, face {f}" for a in (20, 30) for f in ("≈200 px", "≈60 px")) + " | "
          + " | ".join(f"{n} ms" for n in canvases) + " |")  # fmt: skip
    print("|---|" + "---:|" * (4 + len(canvases)))
    looks = [("second look (default)", YuNetDetector()), ("one pass", WithoutLook())]
    for face, context in ((144, 1.4), (144, 4 / 3)):  # the look's face size and context (192 px: 32 divides it)
        if (face, context) != (YuNetDetector.LANDMARK_FACE, YuNetDetector.LANDMARK_CONTEXT):
            variant = YuNetDetector()
            variant.LANDMARK_FACE, variant.LANDMARK_CONTEXT = face, context
            looks.append((f"look at {face} px × {context}", variant))
    for label, detector in looks:
        cells = []
        for angle in (20, 30):
            rotated = cv2.warpAffine(
                photo, cv2.getRotationMatrix2D((464, 428), angle, 1.0), (w, h), borderMode=cv2.BORDER_REPLICATE
            )
            for shrink in (1.0, 0.3):
                small = cv2.resize(rotated, None, fx=shrink, fy=shrink, interpolation=cv2.INTER_AREA)
                (x0, y0), (x1, y1) = detector.detect(small)[0].landmarks[:2]
                cells.append(f"{np.degrees(np.arctan2(y1 - y0, x1 - x0)):+.1f}°")
        cells += [f"{median_ms(lambda im=im, d=detector: d.detect(im), 9):.1f}" for im in canvases.values()]
        print(f"| {label} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chips", type=int, default=300, help="validation chips to try")
    parser.add_argument("--detector", choices=DETECTORS, help="only this detector")
    parser.add_argument("--smallest", action="store_true", help="the smallest face found per canvas size")
    parser.add_argument(
        "--tilt", action="store_true", help="YuNet's landmarks on a rotated face, with and without the look"
    )
    parser.add_argument("--data-root", type=Path, default=DEFAULT_DATA_ROOT)
    parser.add_argument("--manifest", type=Path, default=DEFAULT_MANIFEST)
    args = parser.parse_args()
    cv2.setNumThreads(1)  # as in the service: one thread per request
    if args.smallest:
        smallest_faces([args.detector] if args.detector else list(DETECTORS))
        return
    if args.tilt:
        tilts()
        return
    images = {name: imaging.decode(data, 10**9) for name, data in photos().items()}
    faces = random.Random(0).sample(read_manifest(args.manifest, "val"), args.chips)
    bare = [read_rgb(str(args.data_root / f.path)) for f in faces]
    padded = [pad_chip(chip)[0] for chip in bare]

    candidates = []
    if args.detector in (None, "yunet"):
        for min_face, max_pixels in itertools.product((32, 48), (150_000, 250_000, 400_000)):
            label = f"yunet min face {min_face} · max pixels {max_pixels:,}"
            detector = YuNetDetector(min_confidence=min(THRESHOLDS), min_face=min_face, max_pixels=max_pixels)
            candidates.append((label, detector, THRESHOLDS))
    if args.detector in (None, "dnn"):
        for whole, min_face, max_pixels in itertools.product((160, 300), (40, 48), (400_000, 700_000)):
            label = f"dnn whole {whole} · min face {min_face} · max pixels {max_pixels:,}"
            detector = DnnDetector(
                min_confidence=min(THRESHOLDS), whole_side=whole, min_face=min_face, max_pixels=max_pixels
            )
            candidates.append((label, detector, THRESHOLDS))
    if args.detector in (None, "haar"):
        for max_side, scale, neighbours in itertools.product((1024,), (1.1, 1.2), (4, 5)):
            detector = HaarDetector(max_side=max_side, scale_factor=scale, min_neighbors=neighbours)
            candidates.append(
                (f"haar max side {max_side} · scale {scale} · neighbours {neighbours}", detector, (None,))
            )

    header = " | ".join(f"{n} [{e}]" for n, e in EXPECTED.items())
    print(f"| setting | threshold | {header} | padded chips: ≥1 / exactly 1 | bare chips: ≥1 / exactly 1 |")
    print("|---" * (4 + len(EXPECTED)) + "|")
    for label, detector, thresholds in candidates:
        found = {n: detector.detect(images[n]) for n in EXPECTED}
        ms = {n: median_ms(lambda n=n, d=detector: d.detect(images[n]), 3) for n in EXPECTED}
        chips = {
            key: [[d.score for d in detector.detect(im)] for im in ims]
            for key, ims in (("padded", padded), ("bare", bare))
        }
        for t in thresholds:
            keep = (lambda s: True) if t is None else (lambda s, t=t: s >= t)
            cells = [f"{sum(keep(d.score) for d in found[n])} · {ms[n]:.0f} ms" for n in EXPECTED]
            rates = [chip_rates(chips[k], -1e9 if t is None else t) for k in ("padded", "bare")]
            print(f"| {label} | {t if t is not None else '–'} | " + " | ".join(cells + rates) + " |", flush=True)


if __name__ == "__main__":
    main()
