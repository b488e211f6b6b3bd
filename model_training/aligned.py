"""The aligned-face cache: every face of every source framed the way the service frames a photo.

Each source image goes through the service's own detector (YuNet) and landmark alignment
(`crop.align_face` with the template of manifests/crop_yunet.json), once, padded with a replicated
border first (as a face inside a larger photo, the way the template was measured). Training,
validation and evaluation then read these crops, so the model learns from, is chosen on and is
judged on the framing it is served, for UTKFace's tight chips and All-Age-Faces' looser
head-and-shoulders photos alike.

data/faces/                 (derived, git-ignored; `python -m model_training align-faces`)
  SOURCE/PATH               the aligned crop (JPEG, quality 95) of the manifest's PATH
  manifest.csv              every source's manifest rows, paths prefixed by SOURCE/, for the faces
                            aligned; a recipe trains on it with data_root = data/faces
  report.json               per source: faces, aligned, not found (and what was done with them)

A UTKFace chip where YuNet finds no face keeps its own framing (the chip is what the template
reproduces; counted as kept_unaligned); an AAF photo without a face found is left out, and
counted. A crop already in the cache is kept, so the counts of a resumed run cover only what it
aligned anew.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np

from app.faces.crop import Template, align_face, crop_whole, read_rgb, spec_from_dict
from app.faces.detection import FaceDetector
from app.faces.detectors import make_detector
from model_training import calibrate
from model_training.dataset import SOURCES, Face, read_manifest, write_manifest

CACHE = Path("data/faces")
MANIFEST = CACHE / "manifest.csv"
HOW_TO_ALIGN = (
    "python -m model_training align-faces makes it, from UTKFace and All-Age-Faces (AAF: extract it into data/aaf "
    "with ../shared/tools/get-aaf.sh as ../shared/data/aaf/README.md says, then python -m model_training index "
    "--source aaf)"
)
SIZE = 224  # the crops' side: the model's input (a recipe at another size resizes them)
QUALITY = 95


def load_template(path: Path | None = None) -> Template:
    """The YuNet template the alignment maps faces onto (manifests/crop_yunet.json by default)."""
    path = path or calibrate.default_path("yunet")
    spec = spec_from_dict(json.loads(Path(path).read_text()))
    if not isinstance(spec, Template):
        raise ValueError(f"{path} holds a box crop, not a landmark template")
    return spec


def align_image(image: np.ndarray, detector: FaceDetector, template: Template, size: int = SIZE) -> np.ndarray | None:
    """The face nearest the image's centre, aligned as the service aligns it; None when none is found."""
    padded, cx, cy = calibrate.pad_chip(image)
    found = [d for d in detector.detect(padded) if d.landmarks is not None]
    if not found:
        return None
    face = found[calibrate.nearest([d.box for d in found], cx, cy)]
    return align_face(padded, face.landmarks, template, size)


def _write(path: Path, rgb: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    ok, data = cv2.imencode(".jpg", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, QUALITY])
    if not ok:
        raise RuntimeError(f"cannot encode {path}")
    path.write_bytes(data.tobytes())


def align_source(
    source: str, faces: list[Face], data_root: Path, out: Path, template: Template, threads: int = 2, log=print
) -> tuple[list[Face], dict]:
    """Align one source's faces into out/SOURCE/; the rows of those kept (paths under out) and counts.
    A crop already in the cache is kept (re-running resumes)."""
    detector = make_detector("yunet")

    def one(face: Face) -> tuple[Face | None, bool]:
        """The face's row in the cache (None: left out), and whether it was aligned by its landmarks."""
        target, aligned = out / source / face.path, True
        if not target.exists():
            image = read_rgb(str(data_root / face.path))
            crop = align_image(image, detector, template)
            if crop is None:
                if source != "utkface":
                    return None, False
                crop, aligned = crop_whole(image, SIZE), False
            _write(target, crop)
        return replace(face, path=f"{source}/{face.path}"), aligned

    kept, unaligned = [], 0
    with ThreadPoolExecutor(threads) as pool:
        for done, (face, aligned) in enumerate(pool.map(one, faces), 1):
            if face is not None:
                kept.append(face)
                unaligned += not aligned
            if done % 2000 == 0:
                log(f"{source}: {done}/{len(faces)}")
    counts = {"faces": len(faces), "kept": len(kept), "left_out": len(faces) - len(kept)}
    return kept, {**counts, "kept_unaligned": unaligned}


def align_all(sources: list[str], out: Path = CACHE, threads: int = 2, log=print) -> dict:
    """Every source's manifest through the detector and the alignment; writes out/manifest.csv."""
    template = load_template()
    missing = [s for s in sources if not SOURCES[s][0].is_dir() or not SOURCES[s][1].is_file()]
    if missing:
        where = ", ".join(f"{s} ({SOURCES[s][0]} and {SOURCES[s][1]})" for s in missing)
        raise FileNotFoundError(f"missing {where}: {HOW_TO_ALIGN}")
    rows, report = [], {}
    for source in sources:
        data_root, manifest = SOURCES[source]
        kept, counts = align_source(source, read_manifest(manifest), data_root, out, template, threads, log)
        rows += kept
        report[source] = counts
        log(f"{source}: {counts}")
    write_manifest(rows, out / MANIFEST.name)
    report["template"] = template.to_dict()["template"]  # what check_template compares at export
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def check_template(manifest: Path, template: Template) -> None:
    """Refuse a model whose YuNet template is not the one its aligned training faces were made
    with (recorded in report.json beside the cache's manifest): it would be served crops framed
    unlike those it learnt from. A manifest that is no aligned cache, or an older cache without
    the record, passes."""
    report = Path(manifest).parent / "report.json"
    made = json.loads(report.read_text()).get("template") if report.is_file() else None
    if made is not None and not np.allclose(np.asarray(made, np.float64), np.asarray(template.points), atol=1e-6):
        raise ValueError(
            f"the faces of {manifest} were aligned with another template than the model's yunet crop: run "
            "python -m model_training align-faces again (and retrain), or give the crop the faces were made with"
        )
