"""`dex-age predict --ray`: a real local Ray, Parquet parts that hold every input exactly as the
folder mode writes it, also when an actor is killed mid-run, and a resumed run that skips what is
written."""

from __future__ import annotations

import csv
import io
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import psutil
import pyarrow.parquet as pq
import pytest

from harness.commands import DEX_AGE, dex_age_predict

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(scope="module")
def files(test_images, tmp_path_factory) -> Path:
    """20 files in two folders: copies of the test photos (4, 1 and 0 faces), a truncated JPEG and a
    text file."""
    root = tmp_path_factory.mktemp("batch") / "photos"
    (root / "more").mkdir(parents=True)
    for i in range(6):
        for name in ("face.jpg", "grace_hopper.bmp", "cat.bmp"):
            folder = root if i % 2 else root / "more"
            shutil.copy(test_images / name, folder / f"{i}-{name}")
    (root / "cut.jpg").write_bytes((test_images / "face.jpg").read_bytes()[:3000])
    (root / "notes.txt").write_text("not a picture")
    return root


@pytest.fixture(scope="module")
def folder_rows(files, tiny_model_dir) -> list[dict]:
    """What the folder mode writes for the same files (CSV)."""
    done = dex_age_predict(str(files), "--recursive", model_dir=tiny_model_dir)
    assert done.returncode == 1, done.stderr  # two files cannot be read
    return list(csv.DictReader(io.StringIO(done.stdout)))


def _parquet_rows(out: Path) -> list[dict]:
    parts = sorted(out.glob("part-*.parquet"))
    assert parts and not list(out.glob(".partial-*"))
    return [row for part in parts for row in pq.read_table(part).to_pylist()]


def _key(row: dict) -> tuple:
    return (row["file"], row.get("kind") or "", int(row["face"]) if row.get("face") not in (None, "") else -1)


def _same_as_folder_mode(ray_rows: list[dict], folder_rows: list[dict]) -> None:
    assert sorted(map(_key, ray_rows)) == sorted(map(_key, folder_rows))  # each row once, none missing
    by_key = {_key(r): r for r in folder_rows}
    for row in ray_rows:
        want = by_key[_key(row)]
        for column in ("age", "age_std", "age_low", "age_high", "x", "width", "error"):
            shown = want[column]
            if shown in ("", None):
                assert row[column] is None
            elif column == "error":
                assert row[column] == shown
            else:
                assert float(row[column]) == pytest.approx(float(shown), abs=1e-3)
        if row["kind"] == "face":
            assert len(row["distribution"]) == 101 and abs(sum(row["distribution"]) - 1) < 1e-3
            ages = np.arange(101)
            assert float(np.dot(row["distribution"], ages)) == pytest.approx(row["age"], abs=0.05)


def test_ray_writes_every_file_as_the_folder_mode_does(files, folder_rows, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    done = dex_age_predict(str(files), "--recursive", "--ray", "--out", str(out), "--part-files", "5",
                           model_dir=tiny_model_dir)  # fmt: skip
    assert done.returncode == 1, done.stderr  # some files could not be read, as in the folder mode
    assert "20 files, " in done.stderr and "2 could not be read" in done.stderr
    assert len(list(out.glob("part-*.parquet"))) == 7  # 20 files, at most 5 a part and four parts an actor: 3
    rows = _parquet_rows(out)
    _same_as_folder_mode(rows, folder_rows)
    errors = {r["file"]: r["error"] for r in rows if r["error"]}
    assert errors == {str(files / "cut.jpg"): "corrupt_image", str(files / "notes.txt"): "not_an_image"}


def test_an_actor_killed_mid_run_loses_and_repeats_nothing(files, folder_rows, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    command = [DEX_AGE, "predict", str(files), "--recursive", "--ray", "--out", str(out), "--part-files", "1",
               "--model-dir", str(tiny_model_dir), "--runtime", "onnx"]  # fmt: skip
    job = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.monotonic() + 240
    while killed is None and time.monotonic() < deadline and job.poll() is None:
        if len(list(out.glob("part-*.parquet"))) >= 2:  # the pool is at work: kill one of its actors
            actors = [p for p in psutil.process_iter(["cmdline"]) if "ray::Scorer" in " ".join(p.info["cmdline"] or [])]
            if actors:
                killed = actors[0].pid
                actors[0].send_signal(signal.SIGKILL)
        time.sleep(0.05)
    _, stderr = job.communicate(timeout=300)
    assert killed is not None, "no actor was running to kill"
    assert job.returncode == 1, stderr
    assert len(list(out.glob("part-*.parquet"))) == 20
    _same_as_folder_mode(_parquet_rows(out), folder_rows)


def test_resume_skips_what_is_written_and_a_used_folder_needs_it(files, folder_rows, tiny_model_dir, tmp_path):
    out = tmp_path / "out"
    first = dex_age_predict(str(files / "more"), "--ray", "--out", str(out), "--part-files", "4",
                            model_dir=tiny_model_dir)  # fmt: skip
    assert first.returncode == 0, first.stderr
    written = {p: p.read_bytes() for p in out.glob("part-*.parquet")}
    again = dex_age_predict(str(files), "--recursive", "--ray", "--out", str(out), model_dir=tiny_model_dir)
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr
    resumed = dex_age_predict(str(files), "--recursive", "--ray", "--out", str(out), "--resume", "--part-files", "4",
                              model_dir=tiny_model_dir)  # fmt: skip
    assert resumed.returncode == 1, resumed.stderr
    assert "9 already written" in resumed.stderr and "11 files, " in resumed.stderr
    assert all(p.read_bytes() == data for p, data in written.items())  # the first run's parts stay
    _same_as_folder_mode(_parquet_rows(out), folder_rows)
