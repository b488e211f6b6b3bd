"""`dex-age`: serve the API, or estimate the ages in files and folders in process.

    dex-age serve [--host H] [--port P]          the service, as `python -m app`
    dex-age predict PATH... [--recursive] [--format csv|jsonl] [--out FILE] [--no-detect]
                    [--max-faces N] [--model-dir DIR] [--runtime tensorflow|onnx]

`predict` writes one row per face (file, face index, box, age, spread, interval, detection score,
the five landmarks' x and y),
one row for a file without a face and one for a file that cannot be read (with the API's error
code); a bad file never stops the run. Exit code 0 when every file was read, 1 when some were not.
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

from model_training.detect import LANDMARKS

COLUMNS = [
    "file",
    "face",
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


def rows_for(estimator, path: Path, *, detect: bool, max_faces: int) -> list[dict]:
    from app.errors import ApiError

    try:
        answer = estimator.predict(path, detect=detect, max_faces=max_faces, include_distribution=False)
    except ApiError as exc:
        return [{"file": str(path), "error": exc.error, "detail": exc.detail}]
    except OSError as exc:
        return [{"file": str(path), "error": "unreadable_file", "detail": exc.strerror or "the file cannot be read"}]
    except Exception:  # noqa: BLE001 - one odd file must not stop a run over thousands
        return [{"file": str(path), "error": "internal_error", "detail": "the estimator failed on this file"}]
    if not answer["faces"]:
        return [{"file": str(path)}]
    return [
        {
            "file": str(path),
            "face": i,
            **face["box"],
            "age": face["age"],
            "age_std": face["age_std"],
            "age_low": face["age_interval"]["low"],
            "age_high": face["age_interval"]["high"],
            "detection_score": None if face["detection_score"] is None else round(face["detection_score"], 4),
            **{f"{name}_{axis}": point[axis] for name, point in (face["landmarks"] or {}).items() for axis in "xy"},
        }
        for i, face in enumerate(answer["faces"])
    ]


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
    files = faces = unread = 0
    out = open(args.out, "w", newline="") if args.out else sys.stdout  # noqa: SIM115 - closed below
    try:
        writer = Writer(out, args.format)
        work = functools.partial(rows_for, estimator, detect=not args.no_detect, max_faces=args.max_faces)
        for rows in in_order(work, iter(paths), settings.compute_threads):
            files += 1
            unread += "error" in rows[0]
            faces += sum("face" in row for row in rows)
            for row in rows:
                writer.write(row)
            if progress:
                print(f"\r{files}/{len(paths)} files, {faces} faces, {unread} unreadable", end="", file=sys.stderr)
    finally:
        if args.out:
            out.close()
    if progress:
        print(file=sys.stderr)
    print(f"{files} files, {faces} faces, {unread} could not be read", file=sys.stderr)
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


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="dex-age", description="Face age estimation with DEX.")
    commands = root.add_subparsers(dest="command", required=True)
    run = commands.add_parser("serve", help="run the HTTP service (as python -m app; settings from the environment)")
    run.add_argument("--host", help="address to listen on (HOST)")
    run.add_argument("--port", type=int, help="port to listen on (PORT)")
    run.set_defaults(func=serve)
    estimate = commands.add_parser("predict", help="estimate the ages of the faces in files and folders")
    estimate.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="image files or folders")
    estimate.add_argument("--recursive", "-r", action="store_true", help="also the files in sub-folders")
    estimate.add_argument("--format", choices=["csv", "jsonl"], default="csv", help="output format (default csv)")
    estimate.add_argument("--out", "-o", type=Path, help="write here instead of standard output")
    estimate.add_argument("--no-detect", action="store_true", help="each file is one face crop, as is")
    estimate.add_argument("--max-faces", type=_positive, default=10, help="most faces a file, largest first")
    estimate.add_argument("--model-dir", type=Path, help="model directory (default: MODEL_DIR or the shipped model)")
    estimate.add_argument("--runtime", choices=["tensorflow", "onnx"], help="default: MODEL_RUNTIME or tensorflow")
    estimate.set_defaults(func=predict)
    return root


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
