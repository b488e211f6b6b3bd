"""`dex-age`: serve the API, or estimate the ages in files and folders in process.

    dex-age serve [--host H] [--port P]          the service, as `python -m app`
    dex-age predict PATH... [--recursive] [--format csv|jsonl] [--out FILE] [--no-detect]
                    [--max-faces N] [--fps F] [--per-frame] [--model-dir DIR] [--runtime onnx|tensorflow]
    dex-age predict PATH|URI... --ray [ADDRESS] --out DIR|URI [--actors N] [--part-files N] [--resume]

`predict` writes one row per face of an image (file, face index, box, age, spread, interval,
detection score, the five landmarks' x and y) and one per person of a video (track, first and last
time, frames used, the fused age and interval, the box at the best frame; with --per-frame also a
row per person and sampled frame), one row for a file without a face and one for a file that
cannot be read (with the API's error code); a bad file never stops the run. Exit code 0 when
every file was read, 1 when some were not.
With --ray the same rows (and each face's distribution) are written as Parquet parts by a pool of
Ray actors (app.batch). Other settings (DETECTOR, TTA, ...) come from the environment, as for the service.
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

from app.model.model_dir import DEFAULT_RUNTIME, RUNTIMES
from app.rows import COLUMNS, files_in, rows_for


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


def predict_ray(args: argparse.Namespace) -> int:
    """`predict --ray`: the inputs scored by a pool of Ray actors into Parquet parts (app.batch)."""
    try:
        from app.batch import predict_on_ray, progress_line
    except ImportError:
        print("dex-age: --ray needs Ray: pip install 'dex-age[ray]'", file=sys.stderr)
        return 2
    if not args.out:
        print("dex-age: --ray writes Parquet parts into a folder or URI: give it with --out", file=sys.stderr)
        return 2
    try:
        totals = predict_on_ray(
            list(args.paths),
            str(args.out),
            address=None if args.ray == "local" else args.ray,
            actors=args.actors,
            part_files=args.part_files,
            resume=args.resume,
            recursive=args.recursive,
            model_dir=str(args.model_dir) if args.model_dir else None,
            runtime=args.runtime,
            detect=not args.no_detect,
            max_faces=args.max_faces,
            progress=progress_line if sys.stderr.isatty() else None,
        )
    except FileExistsError as exc:
        print(f"dex-age: {exc}", file=sys.stderr)
        return 2
    if sys.stderr.isatty():
        print(file=sys.stderr)
    rate = totals["files"] / totals["seconds"] if totals["seconds"] else 0.0
    print(
        f"{totals['files']} files, {totals['faces']} faces, {totals['errors']} could not be read "
        f"({totals['skipped']} already written; {totals['parts']} parts by {totals['actors']} actors, "
        f"{rate:.1f} files/s after {totals['startup_seconds']:.1f} s of Ray start-up)",
        file=sys.stderr,
    )
    return 1 if totals["errors"] else 0


def predict(args: argparse.Namespace) -> int:
    if args.ray:
        return predict_ray(args)
    from app.config import Settings
    from app.estimator import Estimator

    settings = Settings(model_threads=1, **({"model_dir": args.model_dir} if args.model_dir else {}))
    estimator = Estimator.from_settings(settings, runtime=args.runtime)  # files side by side, one core each
    paths = list(files_in([Path(p) for p in args.paths], args.recursive))
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
    estimate.add_argument("paths", nargs="+", metavar="PATH", help="image or video files, folders (or URIs with --ray)")
    estimate.add_argument("--recursive", "-r", action="store_true", help="also the files in sub-folders")
    estimate.add_argument("--format", choices=["csv", "jsonl"], default="csv", help="output format (default csv)")
    estimate.add_argument("--out", "-o", help="write here instead of standard output (--ray: a folder or URI)")
    estimate.add_argument("--no-detect", action="store_true", help="each file is one face crop, as is")
    estimate.add_argument("--max-faces", type=_positive, default=10, help="most faces a file, largest first")
    estimate.add_argument("--fps", type=_positive_number, help="frames a second of a video estimated (VIDEO_FPS: 4)")
    estimate.add_argument("--per-frame", action="store_true", help="videos: also a row per person and sampled frame")
    estimate.add_argument("--model-dir", type=Path, help="model directory (default: MODEL_DIR or the shipped model)")
    estimate.add_argument("--runtime", choices=list(RUNTIMES), help=f"default: MODEL_RUNTIME or {DEFAULT_RUNTIME}")
    cluster = estimate.add_argument_group("Ray (pip install 'dex-age[ray]'): Parquet parts under --out")
    cluster.add_argument(
        "--ray",
        nargs="?",
        const="local",
        metavar="ADDRESS",
        help="score on Ray: a local one, or ADDRESS (auto, ray://…)",
    )
    cluster.add_argument("--actors", type=_positive, help="actors in the pool (default: the cluster's CPUs)")
    cluster.add_argument(
        "--part-files",
        type=_positive,
        default=256,
        help="most inputs per Parquet part (default 256; fewer to give each actor four parts)",
    )
    cluster.add_argument("--resume", action="store_true", help="skip the inputs the parts under --out already hold")
    estimate.set_defaults(func=predict)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
