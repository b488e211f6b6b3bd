"""`dex-age`: serve the API, or estimate the ages in files and folders in process.

    dex-age serve [--host H] [--port P]          the service, as `python -m app`
    dex-age predict PATH... [--recursive] [--format csv|jsonl] [--out FILE] [--no-detect]
                    [--max-faces N] [--fps F] [--per-frame] [--model-dir DIR] [--runtime onnx|tensorflow]

`predict` writes one row per face of an image (file, face index, box, age, spread, interval,
detection score, the five landmarks' x and y) and one per person of a video (track, first and last
time, frames used, the fused age and interval, the box at the best frame; with --per-frame also a
row per person and sampled frame), one row for a file without a face and one for a file that
cannot be read (with the API's error code); a bad file never stops the run. Exit code 0 when
every file was read, 1 when some were not.
Other settings (DETECTOR, TTA, ...) come from the environment, as for the service.
"""

from __future__ import annotations

import argparse
import csv
import functools
import json
import os
import sys
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TextIO

from app.faces.detection import LANDMARKS
from app.model.model_dir import DEFAULT_RUNTIME, RUNTIMES

COLUMNS = [
    "file",
    "kind",  # "face" (a face of an image), "person" (a video's person, fused), "frame" (a person in one frame)
    "face",
    "track",
    "time",
    "time_first",
    "time_last",
    "frames",
    "x",
    "y",
    "width",
    "height",
    "age",
    "age_std",
    "age_low",
    "age_high",
    "detection_score",
    *(f"{name}_{axis}" for name in LANDMARKS for axis in ("x", "y")),
    "error",
    "detail",
]


def files_in(paths: list[Path], recursive: bool) -> Iterator[Path]:
    """The files named, and those in the folders named (sorted; hidden ones skipped)."""
    for path in paths:
        if path.is_dir():
            found = path.rglob("*") if recursive else path.iterdir()
            yield from sorted(p for p in found if p.is_file() and not p.name.startswith("."))
        else:
            yield path  # a missing file becomes an error row


def rows_for(estimator, path: Path, *, detect: bool, max_faces: int, video: dict) -> list[dict]:
    """The rows of one file: its faces, or a video's people (and with video["per_frame"] their
    frames); one error row for a file that cannot be read."""
    from app.imaging import ImageError
    from app.video import is_video

    try:
        if is_video(path):
            return video_rows(estimator, path, max_faces=max_faces, **video)
        answer = estimator.answer(path, detect=detect, max_faces=max_faces, include_distribution=False)
    except ImageError as exc:
        return [{"file": str(path), "error": exc.error, "detail": exc.detail}]
    except OSError as exc:
        return [{"file": str(path), "error": "unreadable_file", "detail": exc.strerror or "the file cannot be read"}]
    except Exception:  # noqa: BLE001 - one odd file must not stop a run over thousands
        return [{"file": str(path), "error": "internal_error", "detail": "the estimator failed on this file"}]
    if not answer["faces"]:
        return [{"file": str(path)}]
    return [{"file": str(path), "kind": "face", "face": i, **face_row(face)} for i, face in enumerate(answer["faces"])]


def face_row(face: dict) -> dict:
    """A face of the JSON answer as the columns from x to the landmarks."""
    return {
        **face["box"],
        "age": face["age"],
        "age_std": face["age_std"],
        "age_low": face["age_interval"]["low"],
        "age_high": face["age_interval"]["high"],
        "detection_score": None if face["detection_score"] is None else round(face["detection_score"], 4),
        **{f"{name}_{axis}": point[axis] for name, point in (face["landmarks"] or {}).items() for axis in "xy"},
    }


def video_rows(estimator, path: Path, *, max_faces: int, fps: float, per_frame: bool, progress) -> list[dict]:
    """A video's people (one row each, the box and landmarks of the best frame, the fused age), then
    with per_frame each person's face in each sampled frame; one row when nobody was found."""
    from app.video import predict_video

    answer = predict_video(estimator, path, fps=fps, max_faces=max_faces, per_frame=per_frame, progress=progress)
    note = answer["video"]["truncated"]
    if note:
        print(f"{path}: {note}", file=sys.stderr)
    rows = []
    for person in answer["people"]:
        summary = {"age": person["age"], "age_std": person["age_std"], "age_interval": person["age_interval"]}
        rows.append(
            {
                "file": str(path),
                "kind": "person",
                **{k: person[k] for k in ("track", "time_first", "time_last", "frames")},
                "time": person["best_time"],
                **face_row({**person["best_face"], **summary}),
                "detail": note,
            }
        )
    for frame in answer["frames"] or []:
        rows.append(
            {"file": str(path), "kind": "frame", "track": frame["track"], "time": frame["time"], **face_row(frame)}
        )
    return rows or [{"file": str(path), "detail": note}]


def in_order(work, items: Iterator, threads: int) -> Iterator:
    """work(item) for every item on `threads` threads, yielded in the items' order; a bounded
    number are in flight, so a folder of a million files does not become a million futures."""
    with ThreadPoolExecutor(threads, thread_name_prefix="predict") as pool:
        pending: deque[Future] = deque()
        for item in items:
            pending.append(pool.submit(work, item))
            if len(pending) >= 4 * threads:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


class Writer:
    def __init__(self, out: TextIO, fmt: str) -> None:
        self.out, self.fmt = out, fmt
        if fmt == "csv":
            self.csv = csv.DictWriter(out, COLUMNS, lineterminator="\n")
            self.csv.writeheader()

    def write(self, row: dict) -> None:
        full = {column: row.get(column) for column in COLUMNS}
        if self.fmt == "csv":
            self.csv.writerow(full)
        else:
            self.out.write(json.dumps(full) + "\n")


def predict(args: argparse.Namespace) -> int:
    from app.config import Settings
    from app.estimator import Estimator

    settings = Settings(model_threads=1, **({"model_dir": args.model_dir} if args.model_dir else {}))
    estimator = Estimator.from_settings(settings, runtime=args.runtime)  # files side by side, one core each
    paths = list(files_in(args.paths, args.recursive))
    progress = sys.stderr.isatty()

    def in_videos() -> str:
        return f", {people} people in videos" if people else ""

    def video_progress(t: float, duration: float | None) -> None:
        if progress:
            print(
                f"\r  video: {t:.1f} s" + (f" of {duration:.1f} s" if duration else "") + " " * 8,
                end="",
                file=sys.stderr,
            )

    files = faces = people = unread = 0
    out = open(args.out, "w", newline="") if args.out else sys.stdout  # noqa: SIM115 - closed below
    try:
        writer = Writer(out, args.format)
        video = {"fps": args.fps or settings.video_fps, "per_frame": args.per_frame, "progress": video_progress}
        work = functools.partial(rows_for, estimator, detect=not args.no_detect, max_faces=args.max_faces, video=video)
        for rows in in_order(work, iter(paths), settings.compute_threads):
            files += 1
            unread += "error" in rows[0]
            faces += sum(row.get("kind") == "face" for row in rows)
            people += sum(row.get("kind") == "person" for row in rows)
            for row in rows:
                writer.write(row)
            if progress:
                print(
                    f"\r{files}/{len(paths)} files, {faces} faces{in_videos()}, {unread} unreadable",
                    end="",
                    file=sys.stderr,
                )
    finally:
        if args.out:
            out.close()
    if progress:
        print(file=sys.stderr)
    print(f"{files} files, {faces} faces{in_videos()}, {unread} could not be read", file=sys.stderr)
    return 1 if unread else 0


def serve(args: argparse.Namespace) -> int:
    if args.host:
        os.environ["HOST"] = args.host
    if args.port:
        os.environ["PORT"] = str(args.port)
    from app.__main__ import main

    main()
    return 0


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _positive_number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not (0 < value <= 60):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of frames a second within (0, 60]")
    return value


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="dex-age", description="Face age estimation with DEX.")
    commands = root.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run the HTTP service (as python -m app; settings from the environment)")
    run.add_argument("--host", help="address to listen on (HOST)")
    run.add_argument("--port", type=int, help="port to listen on (PORT)")
    run.set_defaults(func=serve)
    estimate = commands.add_parser("predict", help="estimate the ages of the faces in images, videos and folders")
    estimate.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image or video files, or folders")
    estimate.add_argument("--recursive", "-r", action="store_true", help="also the files in sub-folders")
    estimate.add_argument("--format", choices=["csv", "jsonl"], default="csv", help="output format (default csv)")
    estimate.add_argument("--out", "-o", type=Path, help="write here instead of standard output")
    estimate.add_argument("--no-detect", action="store_true", help="each file is one face crop, as is")
    estimate.add_argument("--max-faces", type=_positive, default=10, help="most faces a file, largest first")
    estimate.add_argument("--fps", type=_positive_number, help="frames a second of a video estimated (VIDEO_FPS: 4)")
    estimate.add_argument("--per-frame", action="store_true", help="videos: also a row per person and sampled frame")
    estimate.add_argument("--model-dir", type=Path, help="model directory (default: MODEL_DIR or the shipped model)")
    estimate.add_argument("--runtime", choices=list(RUNTIMES), help=f"default: MODEL_RUNTIME or {DEFAULT_RUNTIME}")
    estimate.set_defaults(func=predict)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
