"""A folder of labelled faces (UTKFace, All-Age-Faces) → a cleaned, de-duplicated index and a
seeded, age-stratified split manifest.

The raw folder is never modified. The manifest (CSV: path, sha256, age, gender, ethnicity, split,
source) is the one record of which face is in which split; every model and report refers to it.
"""

from __future__ import annotations

import csv
import hashlib
import os
import random
import re
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np

# Where things are, relative to the repository root (the commands run from there). The raw data
# (read-only, never in git: UTKFace/, test-images/, aaf/README.md) lies beside the repository in
# ../shared/data unless DEX_DATA names another folder: the one setting for it, read here only.
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = (REPO / os.environ.get("DEX_DATA", "../shared/data")).resolve()
TEST_IMAGES = SHARED_DATA / "test-images"
DEFAULT_DATA_ROOT = SHARED_DATA / "UTKFace"
DEFAULT_MANIFEST = Path("manifests/utkface.csv")
# each source of faces: its raw folder and its committed manifest
SOURCES = {
    "utkface": (DEFAULT_DATA_ROOT, DEFAULT_MANIFEST),
    "aaf": (Path("data/aaf"), Path("manifests/aaf.csv")),
}

SPLITS = ("train", "val", "test")
FIELDS = ("path", "sha256", "age", "gender", "ethnicity", "split", "source")
_AGE = re.compile(r"^\s*(\d+)")
_LABELS = re.compile(r"^\s*\d+_(\d+)_(\d+)_")
_AAF = re.compile(r"^(\d{5})A(\d{2})\.jpg$")  # serial number, "A", age
AAF_FOLDER = "aglined faces"  # (sic) the data set's aligned faces
AAF_LAST_WOMAN = 7380  # serial numbers 00000–07380 are women, 07381–13321 men (the data set's README)
AAF_ETHNICITY = "mostly Asian"  # as the data set states it, for the whole set: not known face by face
GENDERS = ("male", "female")  # UTKFace's codes 0, 1
ETHNICITIES = ("White", "Black", "Asian", "Indian", "Others")  # UTKFace's codes 0..4
UNKNOWN = "unknown"
ADULTS = (30, 69)  # the ages where a bias by ethnicity was found (Model 2.0)
BANDS = [(lo, lo + 9, f"{lo}-{lo + 9}") for lo in range(0, 70, 10)] + [(70, 10_000, "70+")]  # (lo, hi, name)


@dataclass(frozen=True)
class Face:
    path: str  # relative to the data folder
    sha256: str
    age: int
    split: str = ""
    gender: str = UNKNOWN
    ethnicity: str = UNKNOWN
    source: str = "utkface"


@dataclass
class IndexReport:
    files: int = 0
    unparsable: int = 0
    undecodable: int = 0
    duplicates_dropped: int = 0  # extra copies of a group whose ages agree
    conflicts_dropped: int = 0  # every file of a group whose ages disagree
    kept: int = 0


def parse_age(name: str) -> int | None:
    """The age is the leading integer of `AGE_GENDER_RACE_DATETIME.jpg.chip.jpg`.

    Malformed names (a missing field, a stray space, a missing dot) still begin with the age.
    """
    match = _AGE.match(name)
    return int(match.group(1)) if match else None


def parse_labels(name: str) -> tuple[str, str]:
    """(gender, ethnicity) from `AGE_GENDER_RACE_...`; "unknown" when a field is out of range, or
    when the name has too few fields to tell which one is missing."""
    match = _LABELS.match(name)
    fields = match.groups() if match else (None, None)

    def label(code: str | None, names: tuple[str, ...]) -> str:
        return names[int(code)] if code is not None and int(code) < len(names) else UNKNOWN

    return label(fields[0], GENDERS), label(fields[1], ETHNICITIES)


def utkface_labels(name: str) -> tuple[int, str, str] | None:
    """(age, gender, ethnicity) of a UTKFace file name, or None when no age can be read."""
    age = parse_age(name)
    return None if age is None else (age, *parse_labels(name))


def aaf_labels(name: str) -> tuple[int, str, str] | None:
    """(age, gender, ethnicity) of an All-Age-Faces file name `%05dA%02d.jpg`, or None."""
    match = _AAF.match(name)
    if not match:
        return None
    serial, age = int(match.group(1)), int(match.group(2))
    return age, "female" if serial <= AAF_LAST_WOMAN else "male", AAF_ETHNICITY


LABELS = {"utkface": utkface_labels, "aaf": aaf_labels}


def _hash_and_check(path: Path) -> tuple[str, bool]:
    data = path.read_bytes()
    decodable = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) is not None
    return hashlib.sha256(data).hexdigest(), decodable


def index_folder(root: Path, workers: int = 8, source: str = "utkface") -> tuple[list[Face], IndexReport]:
    """Every decodable, labelled, unambiguous face of `root` (for AAF, of its aligned-faces
    folder), sorted by path."""
    report = IndexReport()
    labels = LABELS[source]
    folder = root / AAF_FOLDER if source == "aaf" else root
    if not folder.is_dir():
        how = " (see ../shared/data/aaf/README.md)" if source == "aaf" else ""
        raise FileNotFoundError(f"no folder {folder}{how}")
    candidates: list[tuple[Path, tuple[int, str, str]]] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in {".jpg", ".jpeg", ".png"}):
        report.files += 1
        label = labels(path.name)
        if label is None:
            report.unparsable += 1
        else:
            candidates.append((path, label))
    with ThreadPoolExecutor(workers) as pool:
        checked = list(pool.map(lambda c: _hash_and_check(c[0]), candidates))

    groups: dict[str, list[Face]] = defaultdict(list)
    for (path, (age, gender, ethnicity)), (digest, decodable) in zip(candidates, checked, strict=False):
        if not decodable:
            report.undecodable += 1
            continue
        groups[digest].append(Face(path.relative_to(root).as_posix(), digest, age, "", gender, ethnicity, source))

    faces = []
    for group in groups.values():
        if len({f.age for f in group}) > 1:
            report.conflicts_dropped += len(group)
            continue
        report.duplicates_dropped += len(group) - 1
        faces.append(min(group, key=lambda f: f.path))
    faces.sort(key=lambda f: f.path)
    report.kept = len(faces)
    return faces, report


def split_faces(faces: list[Face], seed: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)) -> list[Face]:
    """Seeded split stratified by age: within each age the faces are shuffled and dealt out.

    Faces are ordered by (age, random key) and dealt in a repeating pattern of 20 slots whose
    shares are `fractions`, so every age and the whole set get the same proportions (±1 face).
    """
    rng = random.Random(seed)
    keyed = sorted(faces, key=lambda f: (f.age, f.sha256))
    by_age: dict[int, list[Face]] = defaultdict(list)
    for face in keyed:
        by_age[face.age].append(face)
    slots = 20
    counts = [round(fr * slots) for fr in fractions]
    counts[0] = slots - sum(counts[1:])
    pattern = [name for name, n in zip(SPLITS, counts, strict=False) for _ in range(n)]
    rng.shuffle(pattern)
    out, position = [], rng.randrange(slots)
    for age in sorted(by_age):
        group = by_age[age]
        rng.shuffle(group)
        for face in group:
            out.append(replace(face, split=pattern[position % slots]))
            position += 1
    out.sort(key=lambda f: f.path)
    return out


def write_manifest(faces: list[Face], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(FIELDS)
        for f in faces:
            writer.writerow((f.path, f.sha256, f.age, f.gender, f.ethnicity, f.split, f.source))


def read_manifest(path: Path, split: str | None = None) -> list[Face]:
    with Path(path).open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    faces = [
        Face(
            r["path"],
            r["sha256"],
            int(r["age"]),
            r["split"],
            r.get("gender", UNKNOWN),
            r.get("ethnicity", UNKNOWN),
            r.get("source") or "utkface",
        )
        for r in rows
    ]
    return [f for f in faces if split is None or f.split == split]


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def summary(faces: list[Face], report: IndexReport | None = None) -> str:
    """A short text summary: counts, what was dropped, an age histogram per split."""
    lines = []
    if report:
        lines.append(
            f"files {report.files}, unparsable names {report.unparsable}, undecodable {report.undecodable}, "
            f"duplicate copies dropped {report.duplicates_dropped}, conflicting-age duplicates dropped "
            f"{report.conflicts_dropped}, kept {report.kept}"
        )
    counts = Counter(f.split for f in faces)
    lines.append("split counts: " + ", ".join(f"{s} {counts.get(s, 0)}" for s in SPLITS))
    lines.append("ages    " + "".join(f"{name:>8}" for _, _, name in BANDS))
    for split in SPLITS:
        ages = [f.age for f in faces if f.split == split]
        row = "".join(f"{sum(lo <= a <= hi for a in ages):>8}" for lo, hi, _ in BANDS)
        lines.append(f"{split:<8}{row}")
    return "\n".join(lines)
