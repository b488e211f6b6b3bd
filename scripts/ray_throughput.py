"""Files per second through `dex-age predict --ray` against the in-process folder mode, on the same
photos, in alternating rounds (this machine's speed drifts from hour to hour), and whether both
give the same ages.

    python scripts/ray_throughput.py [--photos 500] [--rounds 2] [--model-dir DIR]

The photos are photo-like composites of real faces (harness.photos.make_folders: 1600×1200 JPEGs of
one to three UTKFace test faces). The folder mode's time is its command's wall time (model load
included); Ray's is the command's wall time too, and it prints its own start-up (ray.init) apart,
and its rate after start-up (actors' model load included).
"""

from __future__ import annotations

import argparse
import csv
import io
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow.parquet as pq

from app.config import SHIPPED_MODEL
from harness.photos import make_folders

DEX_AGE = str(Path(sys.executable).parent / "dex-age")


def folder_mode(folder: Path, model_dir: Path) -> tuple[float, dict]:
    start = time.monotonic()
    done = subprocess.run(
        [DEX_AGE, "predict", str(folder), "--model-dir", str(model_dir)], capture_output=True, text=True
    )
    seconds = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    return seconds, {(r["file"], r["face"]): r["age"] for r in csv.DictReader(io.StringIO(done.stdout))}


def ray_mode(folder: Path, model_dir: Path, out: Path) -> tuple[float, dict, str]:
    shutil.rmtree(out, ignore_errors=True)
    start = time.monotonic()
    command = [DEX_AGE, "predict", str(folder), "--ray", "--out", str(out), "--model-dir", str(model_dir)]
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    rows = [r for p in sorted(out.glob("part-*.parquet")) for r in pq.read_table(p).to_pylist()]
    ages = {
        (r["file"], "" if r["face"] is None else str(r["face"])): "" if r["age"] is None else f"{r['age']:g}"
        for r in rows
    }
    return seconds, ages, done.stderr.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--model-dir", type=Path, default=SHIPPED_MODEL)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        _, photos = make_folders(Path(tmp), 0, args.photos)
        for r in range(args.rounds):
            plain, plain_ages = folder_mode(photos, args.model_dir)
            ray, ray_ages, summary = ray_mode(photos, args.model_dir, Path(tmp) / "out")
            startup = float(re.search(r"after ([\d.]+) s of Ray start-up", summary).group(1))
            same = {k: f"{float(v):g}" if v else "" for k, v in plain_ages.items()} == ray_ages
            rates = (args.photos / plain, args.photos / ray, args.photos / (ray - startup))
            print(
                f"round {r + 1}: folder mode {rates[0]:.2f} files/s ({plain:.1f} s); Ray {rates[1]:.2f} files/s "
                f"({ray:.1f} s, of which {startup:.1f} s Ray start-up; {rates[2]:.2f} files/s without it); "
                f"ratio {rates[1] / rates[0]:.3f} ({rates[2] / rates[0]:.3f} without start-up); same ages: {same}"
            )
            print(f"  Ray's summary: {summary}")


if __name__ == "__main__":
    main()
