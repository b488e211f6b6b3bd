"""The Keras port of face-api.js's age network against the Node package itself, on real faces.

Runs `scripts/faceapi_reference/reference.mjs` (face-api 1.7.15 on tfjs 4.22's wasm backend; set it
up once with `npm ci --prefix scripts/faceapi_reference`) and the port on the same 112-px inputs,
and prints the largest and mean |Δ age|.

    python scripts/faceapi_parity.py --val 300          # 300 validation faces of each source
    python scripts/faceapi_parity.py --write-reference  # the faces of ../shared/data/test-images:
        # their inputs (PNG) and the package's ages into tests/data/faceapi/, which the port's test reads
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
from pathlib import Path

import cv2
import numpy as np

from app.faces.crop import align_face, read_rgb
from app.faces.detectors import make_detector
from model_training.aligned import MANIFEST, load_template
from model_training.dataset import TEST_IMAGES, read_manifest
from model_training.faceapi import FRAMING, PACKAGE, build_age_net, faceapi_input

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "faceapi_reference" / "reference.mjs"
REFERENCE = HERE.parent / "tests" / "data" / "faceapi"


def node_ages(inputs: np.ndarray) -> dict:
    """face-api's own answers for uint8 [N, 112, 112, 3] inputs: {"ages": [...], "backend", "tfjs"}."""
    if not (RUNNER.parent / "node_modules").is_dir():
        raise SystemExit(f"set up the Node reference first: npm ci --prefix {RUNNER.parent}")
    with tempfile.NamedTemporaryFile(suffix=".u8") as fh:
        fh.write(np.ascontiguousarray(inputs, np.uint8).tobytes())
        fh.flush()
        out = subprocess.run(["node", str(RUNNER), fh.name], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_image_inputs() -> tuple[list[str], np.ndarray]:
    """Every face YuNet finds in the test images, aligned as the service aligns it, then framed for face-api."""
    detector, template = make_detector("yunet"), load_template()
    names, inputs = [], []
    for path in sorted(TEST_IMAGES.glob("*")):
        if path.suffix.lower() not in {".jpg", ".jpeg", ".png", ".bmp"}:
            continue
        image = read_rgb(str(path))
        for i, face in enumerate(d for d in detector.detect(image) if d.landmarks is not None):
            names.append(f"{path.stem}-{i}.png")
            inputs.append(faceapi_input(align_face(image, face.landmarks, template, 224)))
    return names, np.stack(inputs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--val", type=int, default=0, help="this many validation faces of each source")
    parser.add_argument("--write-reference", action="store_true", help="store the test images' faces and answers")
    args = parser.parse_args()
    if args.write_reference:
        names, inputs = test_image_inputs()
    else:
        faces = read_manifest(MANIFEST, "val")
        chosen = [f for s in sorted({f.source for f in faces}) for f in [g for g in faces if g.source == s][: args.val]]
        names = [f.path for f in chosen]
        inputs = np.stack([faceapi_input(read_rgb(str(MANIFEST.parent / f.path))) for f in chosen])
    reference = node_ages(inputs)
    ported = build_age_net().predict(inputs.astype(np.float32), verbose=0)
    delta = np.abs(ported - np.array(reference["ages"]))
    print(
        f"{len(names)} faces: |Δ age| max {delta.max():.2e}, mean {delta.mean():.2e} years "
        f"(Node: face-api {PACKAGE}, tfjs {reference['tfjs']} {reference['backend']})"
    )
    if args.write_reference:
        REFERENCE.mkdir(parents=True, exist_ok=True)
        for name, image in zip(names, inputs, strict=True):
            cv2.imwrite(str(REFERENCE / name), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        record = {
            "package": PACKAGE,
            "tfjs": reference["tfjs"],
            "backend": reference["backend"],
            "framing": FRAMING,
            "made_by": "python scripts/faceapi_parity.py --write-reference",
            "ages": dict(zip(names, reference["ages"], strict=True)),
        }
        (REFERENCE / "reference.json").write_text(json.dumps(record, indent=2) + "\n")
        print(f"wrote {len(names)} faces and their ages to {REFERENCE}")


if __name__ == "__main__":
    main()
