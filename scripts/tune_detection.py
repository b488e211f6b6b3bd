"""Detection settings against speed and recall on the test photos and larger canvases.

For each (DETECT_MAX_SIDE, scale factor, min neighbours) prints the faces found per photo (the
expected count in brackets) and the median detection time. Usage: python scripts/tune_detection.py
"""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

import cv2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app import imaging  # noqa: E402
from model_training.detect import FaceDetector  # noqa: E402
from scripts.bench import median_ms, photos  # noqa: E402

EXPECTED = {  # faces a person counts on each photo (bench.photos() pastes face.jpg and grace_hopper.bmp)
    "cat.bmp": 0,
    "face.jpg": 4,
    "grace_hopper.bmp": 1,
    "canvas-640x480.jpg": 4,
    "canvas-1920x1080.jpg": 5,
    "canvas-4000x3000.jpg": 5,
}


def main() -> None:
    cv2.setNumThreads(1)  # as in the service: one thread per request
    images = {name: imaging.decode(data, 10**9) for name, data in photos().items()}
    print("| max side | scale | neighbours | " + " | ".join(f"{n} [{e}]" for n, e in EXPECTED.items()) + " |")
    print("|---" * (3 + len(EXPECTED)) + "|")
    for max_side, scale, neighbours in itertools.product((640, 1024, 1280), (1.1, 1.2), (4, 5)):
        detector = FaceDetector(max_side=max_side, scale_factor=scale, min_neighbors=neighbours)
        cells = []
        for name in EXPECTED:
            found = len(detector.detect(images[name]))
            ms = median_ms(lambda d=detector, n=name: d.detect(images[n]), 3)
            cells.append(f"{found} · {ms:.0f} ms")
        print(f"| {max_side} | {scale} | {neighbours} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
