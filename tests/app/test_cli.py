"""`dex-age predict` on folders: one row per face, one per faceless or unreadable file, the exit
code saying whether every file was read."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

DEX_AGE = str(Path(sys.executable).parent / "dex-age")


@pytest.fixture
def folder(tmp_path, test_images) -> Path:
    root = tmp_path / "photos"
    (root / "sub").mkdir(parents=True)
    shutil.copy(test_images / "face.jpg", root / "face.jpg")  # 4 faces
    shutil.copy(test_images / "cat.bmp", root / "cat.bmp")  # no face
    shutil.copy(test_images / "grace_hopper.bmp", root / "sub" / "grace.bmp")  # 1 face, one level down
    (root / "broken.jpg").write_bytes((test_images / "face.jpg").read_bytes()[:3000])
    (root / "notes.txt").write_text("not a picture")
    (root / ".hidden.jpg").write_bytes(b"skipped")
    return root


def _run(*args: str, model_dir: Path) -> subprocess.CompletedProcess:
    command = [DEX_AGE, "predict", *args, "--model-dir", str(model_dir), "--runtime", "onnx"]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def test_a_folder_gives_a_row_per_face_and_per_bad_file(folder, tiny_model_dir):
    done = _run(str(folder), "--recursive", model_dir=tiny_model_dir)
    assert done.returncode == 1, done.stderr  # two files could not be read
    assert "5 files, 5 faces, 2 could not be read" in done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    by_file: dict[str, list[dict]] = {}
    for row in rows:
        by_file.setdefault(Path(row["file"]).name, []).append(row)
    assert sorted(by_file) == ["broken.jpg", "cat.bmp", "face.jpg", "grace.bmp", "notes.txt"]
    assert [r["face"] for r in by_file["face.jpg"]] == ["0", "1", "2", "3"]
    assert all(0 <= float(r["age"]) <= 100 and r["age_low"] <= r["age_high"] for r in by_file["face.jpg"])
    assert all(float(r["detection_score"]) >= 0.5 and int(r["width"]) > 40 for r in by_file["face.jpg"])
    for r in by_file["face.jpg"]:  # the five landmarks, inside the face's box
        x, y, w, h = (int(r[k]) for k in ("x", "y", "width", "height"))
        for name in ("right_eye", "left_eye", "nose", "mouth_right", "mouth_left"):
            assert x <= float(r[f"{name}_x"]) <= x + w and y <= float(r[f"{name}_y"]) <= y + h
    assert by_file["cat.bmp"] == [{**{k: "" for k in rows[0]}, "file": str(folder / "cat.bmp")}]
    assert by_file["broken.jpg"][0]["error"] == "corrupt_image"
    assert by_file["notes.txt"][0]["error"] == "not_an_image" and by_file["notes.txt"][0]["detail"]
    assert len(by_file["grace.bmp"]) == 1


def test_jsonl_to_a_file_without_detection_and_exit_0_when_all_were_read(folder, tiny_model_dir, tmp_path):
    out = tmp_path / "ages.jsonl"
    done = _run(str(folder / "face.jpg"), str(folder / "sub"), "--format", "jsonl", "--out", str(out), "--no-detect",
                model_dir=tiny_model_dir)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and "2 files, 2 faces, 0 could not be read" in done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [Path(r["file"]).name for r in rows] == ["face.jpg", "grace.bmp"]
    assert all(r["face"] == 0 and r["detection_score"] is None and r["x"] == 0 for r in rows)
    assert all(r["nose_x"] is None for r in rows)  # no detector, no landmarks


def test_without_recursive_sub_folders_are_left_out_and_missing_paths_are_rows(folder, tiny_model_dir):
    done = _run(str(folder), str(folder / "nothing-here.jpg"), "--max-faces", "1", model_dir=tiny_model_dir)
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    names = [Path(r["file"]).name for r in rows]
    assert "grace.bmp" not in names and names.count("face.jpg") == 1
    assert rows[-1]["error"] == "unreadable_file" and done.returncode == 1


def test_bad_arguments_are_refused_by_the_parser(tiny_model_dir):
    done = _run("x", "--max-faces", "0", model_dir=tiny_model_dir)
    assert done.returncode == 2 and "--max-faces" in done.stderr
