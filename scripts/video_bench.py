"""Frames per second of the video path (decode → detect → align → model → track → fuse) on this
machine, at 640×480 and 1280×720.

A clip is made of face.jpg (four faces) panning slowly, 10 s at 25 frames a second, written with
OpenCV (MJPG). Every frame is estimated (--fps 25: the rate the path sustains) and then the default
few a second (the real-time factor: seconds of video per second of work). As `dex-age predict`
runs a video: one model and OpenCV thread (MODEL_THREADS=1), unless --threads.

Usage: python scripts/video_bench.py [MODEL_DIR] [--runtime onnx] [--threads 1] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from app.config import Settings
from app.estimator import Estimator
from app.video import Limits, predict_video
from harness.clips import panning_clip
from model_training.dataset import TEST_IMAGES

PHOTO = TEST_IMAGES / "face.jpg"
SIZES = ((640, 480), (1280, 720))
SECONDS, NATIVE_FPS = 10, 25


def main() -> None:
    settings = Settings()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path, nargs="?", default=settings.model_dir)
    parser.add_argument("--runtime", default="onnx", choices=["onnx", "tensorflow"])
    parser.add_argument("--threads", type=int, default=1, help="MODEL_THREADS (default 1, as dex-age predict)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    threads = settings.model_copy(update={"model_threads": args.threads})
    estimator = Estimator.from_settings(threads, args.model_dir, args.runtime)
    limits = Limits(max_frames=10_000, max_seconds=3600)
    results = {"model": estimator.model.card["version"], "runtime": args.runtime, "threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        for w, h in SIZES:
            clip = panning_clip(Path(tmp) / f"{w}x{h}.avi", PHOTO, (w, h), SECONDS, NATIVE_FPS)
            predict_video(estimator, clip, fps=2, limits=Limits(4, 3600))  # warm up
            row = {}
            for fps in (NATIVE_FPS, settings.video_fps):
                start = time.perf_counter()
                answer = predict_video(estimator, clip, fps=fps, limits=limits)
                wall = time.perf_counter() - start
                frames = answer["video"]["frames_read"]
                row[f"sampled_{fps:g}_per_s"] = {
                    "frames": frames,
                    "wall_s": round(wall, 2),
                    "frames_per_s": round(frames / wall, 1),
                    "video_s_per_s": round(SECONDS / wall, 2),
                    "people": len(answer["people"]),
                }
            results[f"{w}x{h}"] = row
            print(f"{w}x{h}: {json.dumps(row)}", file=sys.stderr)
    print(json.dumps(results, indent=2))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
