"""`dex-age predict` on folders: one row per face, one per faceless or unreadable file, the exit
code saying whether every file was read."""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.commands import dex_age_predict


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


def test_a_folder_gives_a_row_per_face_and_per_bad_file(folder, tiny_model_dir):
    done = dex_age_predict(str(folder), "--recursive", model_dir=tiny_model_dir)
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
    args = (str(folder / "face.jpg"), str(folder / "sub"), "--format", "jsonl", "--out", str(out), "--no-detect")
    done = dex_age_predict(*args, model_dir=tiny_model_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "" and "2 files, 2 faces, 0 could not be read" in done.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [Path(r["file"]).name for r in rows] == ["face.jpg", "grace.bmp"]
    assert all(r["face"] == 0 and r["detection_score"] is None and r["x"] == 0 for r in rows)
    assert all(r["nose_x"] is None for r in rows)  # no detector, no landmarks


def test_without_recursive_sub_folders_are_left_out_and_missing_paths_are_rows(folder, tiny_model_dir):
    done = dex_age_predict(str(folder), str(folder / "nothing-here.jpg"), "--max-faces", "1", model_dir=tiny_model_dir)
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    names = [Path(r["file"]).name for r in rows]
    assert "grace.bmp" not in names and names.count("face.jpg") == 1
    assert rows[-1]["error"] == "unreadable_file" and done.returncode == 1


def test_bad_arguments_are_refused_by_the_parser(tiny_model_dir):
    done = dex_age_predict("x", "--max-faces", "0", model_dir=tiny_model_dir)
    assert done.returncode == 2 and "--max-faces" in done.stderr


SECONDS = 3  # the clips' length (tests/app/conftest.py)


def test_each_person_is_one_fused_row_followed_over_the_sampled_frames(clips, tiny_model_dir):
    done = dex_age_predict(str(clips / "four.avi"), "--fps", "4", "--per-frame", model_dir=tiny_model_dir)
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    people = [r for r in rows if r["kind"] == "person"]
    frames = [r for r in rows if r["kind"] == "frame"]
    steady = [p for p in people if int(p["frames"]) >= 10]  # 3 s at 4 a second: 12 sampled frames
    assert len(steady) == 4, people
    for p in people:
        assert float(p["age_low"]) <= float(p["age"]) <= float(p["age_high"])
        assert float(p["time_first"]) <= float(p["time"]) <= float(p["time_last"]) <= SECONDS
        assert int(p["width"]) > 0 and p["right_eye_x"]  # the best frame's box and landmarks
        mine = [f for f in frames if f["track"] == p["track"]]
        assert len(mine) == int(p["frames"])
        assert sorted(float(f["time"]) for f in mine) == [float(f["time"]) for f in mine]
    times = sorted({float(f["time"]) for f in frames})
    assert len(times) == 12 and np.allclose(np.diff(times), 0.24, atol=0.05)  # every 6.25th frame of 25 a second
    assert "4 people in videos" in done.stderr or f"{len(people)} people in videos" in done.stderr


@pytest.mark.parametrize(
    ("name", "error"),
    [
        ("empty.mp4", "empty_file"),
        ("text.mov", "unreadable_video"),
        ("cut.mp4", "unreadable_video"),
        ("gone.mkv", "unreadable_file"),
    ],
)
def test_a_bad_video_is_one_error_row_and_exit_code_1(clips, tiny_model_dir, name, error):
    done = dex_age_predict(str(clips / name), "--format", "jsonl", model_dir=tiny_model_dir)
    assert done.returncode == 1
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(rows) == 1 and rows[0]["error"] == error and rows[0]["detail"], rows
    assert "Traceback" not in done.stderr and "moov atom" not in done.stderr


def test_a_long_video_is_bounded_by_the_settings_with_a_clear_message(clips, tiny_model_dir):
    for env, word in (
        ({"VIDEO_MAX_FRAMES": "3"}, "VIDEO_MAX_FRAMES"),
        ({"VIDEO_MAX_SECONDS": "1"}, "VIDEO_MAX_SECONDS"),
    ):
        done = dex_age_predict(str(clips / "four.avi"), "--fps", "4", model_dir=tiny_model_dir, env=env)
        assert done.returncode == 0, done.stderr
        rows = list(csv.DictReader(io.StringIO(done.stdout)))
        assert rows and all(word in r["detail"] for r in rows) and word in done.stderr
        assert max(int(r["frames"]) for r in rows) == (3 if word == "VIDEO_MAX_FRAMES" else 5)  # 0 … 1 s: 5 frames


def test_a_folder_of_photos_and_videos_gives_faces_and_people(clips, test_images, tiny_model_dir, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(clips / "four.mp4", folder / "clip.mp4")
    shutil.copy(test_images / "grace_hopper.bmp", folder / "grace.bmp")
    done = dex_age_predict(str(folder), "--format", "jsonl", model_dir=tiny_model_dir)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    kinds = {(Path(r["file"]).name, r["kind"]) for r in rows}
    assert kinds == {("clip.mp4", "person"), ("grace.bmp", "face")}
    assert "2 files, 1 faces" in done.stderr and "people in videos" in done.stderr
