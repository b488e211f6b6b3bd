"""Where the tests' real data and committed records are, and small builders of test data from them."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import numpy as np

from app.faces.crop import read_rgb
from model_training.dataset import SHARED_DATA, read_manifest

REPO = Path(__file__).resolve().parents[1]
DATA = SHARED_DATA
MANIFEST = REPO / "manifests" / "utkface.csv"
CROPS = sorted((REPO / "manifests").glob("crop_*.json"))  # one calibration per detector


def val_chips(utkface_dir: Path, n: int) -> list[np.ndarray]:
    """`n` UTKFace validation chips (RGB), the same ones every time."""
    faces = random.Random(1).sample(read_manifest(MANIFEST, "val"), n)
    return [read_rgb(str(utkface_dir / f.path)) for f in faces]


def aaf_folder(utkface_dir: Path, root: Path) -> Path:
    """A few files laid out as All-Age-Faces' (`aglined faces/%05dA%02d.jpg`), made from UTKFace chips:
    two women and a man, a byte-identical copy with the same age, one with another age, a stray name."""
    folder = root / "aglined faces"
    folder.mkdir(parents=True)
    a, b, c = sorted(utkface_dir.iterdir())[:3]
    shutil.copy(a, folder / "00012A25.jpg")
    shutil.copy(a, folder / "00013A25.jpg")  # same bytes, same age: one kept
    shutil.copy(b, folder / "07380A41.jpg")  # the last woman's serial number
    shutil.copy(b, folder / "07381A43.jpg")  # same bytes, another age: both dropped
    shutil.copy(c, folder / "12000A07.jpg")  # a man
    shutil.copy(c, folder / "notes.jpg")  # not an AAF name
    return root
