"""Videos: frames read and sampled, faces followed into people, one fused answer each; a bad or
long video is one clear row, never a traceback (app.video, `dex-age predict clip.mp4`)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.config import SHIPPED_MODEL
from app.estimator import Estimator
from app.video import Tracker, iou, predict_video
from harness.clips import panning_clip
from model_training.crop import Box

DEX_AGE = str(Path(sys.executable).parent / "dex-age")
SECONDS, FPS = 3, 25


@pytest.fixture(scope="module")
def clips(test_images, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    photo = test_images / "face.jpg"  # four faces
    panning_clip(root / "four.avi", photo, seconds=SECONDS, fps=FPS)
    panning_clip(root / "four.mp4", photo, seconds=SECONDS, fps=FPS, fourcc="mp4v")
    (root / "empty.mp4").write_bytes(b"")
    (root / "text.mov").write_text("not a video")
    (root / "cut.mp4").write_bytes((root / "four.mp4").read_bytes()[:4000])
    return root


@pytest.fixture(scope="module")
def estimator(tiny_model_dir) -> Estimator:
    return Estimator.from_dir(tiny_model_dir, runtime="onnx")


def _run(*args: str, model_dir: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    command = [DEX_AGE, "predict", *args, "--model-dir", str(model_dir), "--runtime", "onnx"]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def test_each_person_is_one_fused_row_followed_over_the_sampled_frames(clips, tiny_model_dir):
    done = _run(str(clips / "four.avi"), "--fps", "4", "--per-frame", model_dir=tiny_model_dir)
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


def test_the_python_api_fuses_with_the_models_correlation(clips, tmp_path):
    """With ρ = 1 the fused spread is about its frames'; with ρ < 1 it is narrower (the shipped
    model: the tiny one's distributions are nearly flat)."""
    widths = {}
    for rho in (1.0, 0.1):
        model_dir = tmp_path / f"rho{rho}"
        shutil.copytree(
            SHIPPED_MODEL, model_dir, ignore=shutil.ignore_patterns("saved_model", "evaluation", "training")
        )
        card = json.loads((model_dir / "model.json").read_text())
        (model_dir / "model.json").write_text(json.dumps({**card, "fusion": {"correlation": rho}}))
        answer = predict_video(Estimator.from_dir(model_dir, runtime="onnx"), clips / "four.mp4", fps=4, per_frame=True)
        person = answer["people"][0]
        own = [f for f in answer["frames"] if f["track"] == person["track"]]
        widths[rho] = (person["age_std"], np.median([f["age_std"] for f in own]))
        assert person["effective_frames"] == pytest.approx(len(own) / (1 + (len(own) - 1) * rho), abs=0.01)
        assert answer["video"]["frames_read"] == 12 and answer["video"]["truncated"] is None
    assert widths[1.0][0] >= 0.9 * widths[1.0][1]
    assert widths[0.1][0] < 0.6 * widths[0.1][1]  # 12 frames at ρ = 0.1 are worth 5.7: σ / 2.4 if Gaussian


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
    done = _run(str(clips / name), "--format", "jsonl", model_dir=tiny_model_dir)
    assert done.returncode == 1
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(rows) == 1 and rows[0]["error"] == error and rows[0]["detail"], rows
    assert "Traceback" not in done.stderr and "moov atom" not in done.stderr


def test_a_long_video_is_bounded_by_the_settings_with_a_clear_message(clips, tiny_model_dir):
    for env, word in (
        ({"VIDEO_MAX_FRAMES": "3"}, "VIDEO_MAX_FRAMES"),
        ({"VIDEO_MAX_SECONDS": "1"}, "VIDEO_MAX_SECONDS"),
    ):
        done = _run(str(clips / "four.avi"), "--fps", "4", model_dir=tiny_model_dir, env=env)
        assert done.returncode == 0, done.stderr
        rows = list(csv.DictReader(io.StringIO(done.stdout)))
        assert rows and all(word in r["detail"] for r in rows) and word in done.stderr
        assert max(int(r["frames"]) for r in rows) == (3 if word == "VIDEO_MAX_FRAMES" else 5)  # 0 … 1 s: 5 frames


def test_the_tracker_keeps_a_person_across_a_short_gap_and_not_a_long_one(estimator):
    from app.estimator import FaceResult
    from model_training.distribution import summarize

    p = np.full(101, 1 / 101)
    summary = summarize(p, np.arange(101))

    def face(x: int) -> FaceResult:
        return FaceResult(Box(x, 100, 80, 80), 0.9, None, summary, p)

    tracker = Tracker(max_gap=1.0)
    assert tracker.update(0.0, [face(100), face(400)]) == [0, 1]
    assert tracker.update(0.25, [face(410), face(108)]) == [1, 0]  # matched by overlap, not by order
    assert tracker.update(1.0, [face(116)]) == [0]  # person 1 missed for 0.75 s ...
    assert tracker.update(1.2, [face(420), face(120)]) == [1, 0]  # ... and still themselves
    assert tracker.update(3.0, [face(420)]) == [2]  # gone for 1.8 s: someone new
    assert iou(Box(0, 0, 10, 10), Box(5, 0, 10, 10)) == pytest.approx(50 / 150)


def test_fuse_gives_one_answer_from_a_persons_distributions(client, test_images):
    with (test_images / "face.jpg").open("rb") as fh:
        faces = client.post("/predict", files={"file": ("face.jpg", fh, "image/jpeg")}).json()["faces"]
    one = faces[0]["distribution"]["probabilities"]
    alone = client.post("/fuse", json={"distributions": [one]})
    assert alone.status_code == 200, alone.text
    body = alone.json()
    assert body["frames"] == 1 and body["effective_frames"] == 1
    assert body["age"] == pytest.approx(faces[0]["age"], abs=0.01)
    # the distribution travels rounded in JSON, so the refused mass may differ in its 4th decimal
    got, want = body["age_interval"], faces[0]["age_interval"]
    assert (got["low"], got["high"]) == (want["low"], want["high"]) and got["mass"] == pytest.approx(
        want["mass"], abs=2e-4
    )
    # the tiny model has no fitted correlation: ρ = 1, frames that agree make it no surer
    same = client.post("/fuse", json={"distributions": [one] * 5}).json()
    assert same["correlation"] == 1.0 and same["age_std"] == pytest.approx(body["age_std"], abs=0.01)


@pytest.mark.parametrize(
    "body",
    [
        '{"distributions": []}',
        '{"distributions": [[0.5, 0.5]]}',
        '{"distributions": [[' + ",".join(["-1"] + ["0.02"] * 100) + "]]}",
        '{"distributions": [[' + ",".join(["NaN"] + ["0.01"] * 100) + "]]}",
        '{"distributions": [[' + ",".join(["0"] * 101) + "]]}",
        '{"distributions": [[0.5, 0.5], [' + ",".join(["0.01"] * 101) + "]]}",
        '{"distributions": [[' + ",".join(["1e308"] * 101) + "]]}",
        '{"distributions": "many"}',
        "not json",
    ],
)
def test_fuse_refuses_what_is_not_distributions_with_a_clear_422(client, body):
    response = client.post("/fuse", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "invalid_request" and response.json()["detail"]


def test_fuse_is_bounded_by_video_max_frames(client):
    row = [1 / 101] * 101
    response = client.post("/fuse", json={"distributions": [row] * 2401})
    assert response.status_code == 422 and "VIDEO_MAX_FRAMES" in response.json()["detail"]


def test_a_folder_of_photos_and_videos_gives_faces_and_people(clips, test_images, tiny_model_dir, tmp_path):
    folder = tmp_path / "mixed"
    folder.mkdir()
    shutil.copy(clips / "four.mp4", folder / "clip.mp4")
    shutil.copy(test_images / "grace_hopper.bmp", folder / "grace.bmp")
    done = _run(str(folder), "--format", "jsonl", model_dir=tiny_model_dir)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    kinds = {(Path(r["file"]).name, r["kind"]) for r in rows}
    assert kinds == {("clip.mp4", "person"), ("grace.bmp", "face")}
    assert "2 files, 1 faces" in done.stderr and "people in videos" in done.stderr
