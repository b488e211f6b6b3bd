"""Batch scoring on Ray: the folder mode of `dex-age predict` spread over a pool of Ray actors, each
loading the model once, written as Parquet.

    dex-age predict PATH... --ray [ADDRESS] --out DIR [--actors N] [--part-files N] [--resume]

The inputs (files, folders, or URIs that pyarrow's file systems read, such as s3://bucket/prefix)
are listed and sorted by the driver and cut into parts of `part_files` inputs. Each part is scored
by one actor, which writes it as one Parquet file, `part-NNNNNN.parquet`, under a temporary name
first and then renamed: a part file is whole or absent. Ray retries the part on a restarted actor
when an actor dies (max_restarts, max_task_retries), and the retry writes the same file, so no
input is lost or written twice. Every input appears exactly as the folder mode writes it: its face
rows, one row without a face, or one error row; and the rows carry each face's distribution as a
list column. With `resume`, the inputs already in the output's part files are skipped, so a
stopped job continues where it stopped.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

from app.rows import COLUMNS, INTEGER_COLUMNS, TEXT_COLUMNS, image_rows, rows_for

PART = "part-{:06d}.parquet"
DISTRIBUTION = "distribution"  # the list column beside the folder mode's columns
BATCH = 8  # photos whose faces go through the model in one forward


def _fs(uri: str):
    """(pyarrow file system, path) of a local path or a URI."""
    from pyarrow import fs

    if "://" in uri:
        return fs.FileSystem.from_uri(uri)
    return fs.LocalFileSystem(), str(Path(uri).resolve())


def list_inputs(paths: list[str], recursive: bool) -> list[str]:
    """Every input named: a file or URI as given, and the files under a folder or prefix (sorted,
    hidden ones skipped); a path that does not exist stays, to become an error row."""
    from pyarrow import fs

    found: list[str] = []
    for given in paths:
        if "://" not in given:
            local = Path(given)
            if local.is_dir():
                entries = local.rglob("*") if recursive else local.iterdir()
                found += sorted(str(p) for p in entries if p.is_file() and not p.name.startswith("."))
            else:
                found.append(given)
            continue
        filesystem, path = _fs(given)
        info = filesystem.get_file_info(path)
        if info.type != fs.FileType.Directory:
            found.append(given)
            continue
        scheme = given.split("://", 1)[0]
        selector = fs.FileSelector(path, recursive=recursive)
        files = [i.path for i in filesystem.get_file_info(selector) if i.type == fs.FileType.File]
        found += sorted(f"{scheme}://{p}" for p in files if not Path(p).name.startswith("."))
    return found


def _schema():
    import pyarrow as pa

    def kind(column: str):
        if column in TEXT_COLUMNS:
            return pa.string()
        return pa.int64() if column in INTEGER_COLUMNS else pa.float64()

    return pa.schema([(c, kind(c)) for c in COLUMNS] + [(DISTRIBUTION, pa.list_(pa.float32()))])


def written_inputs(out: str) -> tuple[set[str], int]:
    """The inputs the part files under `out` already hold, and the next free part number."""
    import pyarrow.parquet as pq
    from pyarrow import fs

    filesystem, root = _fs(out)
    if filesystem.get_file_info(root).type == fs.FileType.NotFound:
        return set(), 0
    parts = [i.path for i in filesystem.get_file_info(fs.FileSelector(root)) if Path(i.path).name.startswith("part-")]
    done: set[str] = set()
    for part in parts:
        done |= set(pq.read_table(part, columns=["file"], filesystem=filesystem).column("file").to_pylist())
    numbers = [int(Path(p).name[5:11]) for p in parts]
    return done, max(numbers, default=-1) + 1


class Scorer:
    """One actor: the estimator loaded once, then parts of inputs scored into Parquet files."""

    def __init__(self, model_dir: str | None, runtime: str | None, threads: int, options: dict) -> None:
        from app.config import Settings
        from app.estimator import Estimator

        settings = Settings(model_threads=threads, **({"model_dir": model_dir} if model_dir else {}))
        self.estimator = Estimator.from_settings(settings, runtime=runtime)
        self.options = {"video": {"fps": settings.video_fps, "per_frame": False, "progress": None}, **options}
        self.image_options = options

    def pid(self) -> int:
        return os.getpid()

    def _local(self, name: str, folder: Path) -> Path | dict:
        """A local path for an input (a URI's bytes copied into `folder`), or its error row."""
        if "://" not in name:
            return Path(name)
        filesystem, path = _fs(name)
        try:
            with filesystem.open_input_stream(path) as stream:
                data = stream.read()
        except (OSError, ValueError) as exc:
            return {"file": name, "error": "unreadable_file", "detail": str(exc) or "the file cannot be read"}
        local = folder / f"{len(list(folder.iterdir()))}-{Path(path).name}"
        local.write_bytes(data)
        return local

    def _rows(self, names: list[str]) -> list[dict]:
        """Every input's rows in order: videos one by one, images BATCH at a time through one forward."""
        from app.video import is_video

        with tempfile.TemporaryDirectory() as tmp:
            local = [self._local(name, Path(tmp)) for name in names]
            by_input: dict[int, list[dict]] = {}
            images = []
            for i, path in enumerate(local):
                if isinstance(path, dict):
                    by_input[i] = [path]
                elif is_video(path):
                    by_input[i] = rows_for(self.estimator, path, include_distribution=True, **self.options)
                else:
                    images.append(i)
            for start in range(0, len(images), BATCH):
                chunk = images[start : start + BATCH]
                found = image_rows(self.estimator, [local[i] for i in chunk], **self.image_options)
                by_input.update(zip(chunk, found, strict=True))
        # a URI's rows name it as given, not its temporary copy; a path's as the folder mode does
        shown = [name if "://" in name else str(Path(name)) for name in names]
        return [{**row, "file": shown[i]} for i in range(len(names)) for row in by_input[i]]

    def score_part(self, number: int, names: list[str], out: str) -> dict:
        """Score `names` into part file `number` under `out`; the counts of what it wrote."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = self._rows(names)
        table = pa.Table.from_pylist([{c: row.get(c) for c in (*COLUMNS, DISTRIBUTION)} for row in rows], _schema())
        filesystem, root = _fs(out)
        filesystem.create_dir(root, recursive=True)
        final = f"{root}/{PART.format(number)}"
        partial = f"{root}/.partial-{number:06d}-{uuid.uuid4().hex[:8]}.parquet"  # readers skip dot files
        pq.write_table(table, partial, filesystem=filesystem)
        filesystem.move(partial, final)
        errors = len({row["file"] for row in rows if row.get("error")})
        return {
            "part": number,
            "files": len(names),
            "faces": sum(r.get("kind") == "face" for r in rows),
            "errors": errors,
        }


def _remove_partials(out: str) -> None:
    from pyarrow import fs

    filesystem, root = _fs(out)
    if filesystem.get_file_info(root).type == fs.FileType.NotFound:
        return
    for info in filesystem.get_file_info(fs.FileSelector(root)):
        if Path(info.path).name.startswith(".partial-"):
            filesystem.delete_file(info.path)


def parts_of(names: list[str], size: int, first: int) -> Iterator[tuple[int, list[str]]]:
    for i in range(0, len(names), size):
        yield first + i // size, names[i : i + size]


def predict_on_ray(
    paths: list[str],
    out: str,
    *,
    address: str | None = None,
    actors: int | None = None,
    model_threads: int = 1,
    part_files: int = 256,
    resume: bool = False,
    recursive: bool = False,
    model_dir: str | None = None,
    runtime: str | None = None,
    detect: bool = True,
    max_faces: int = 10,
    progress: Callable[[dict], None] | None = None,
) -> dict:
    """Score every input on a pool of Ray actors into Parquet part files under `out`; the totals.

    `address` None starts a local Ray on this machine; "auto" or "ray://HOST:PORT" joins a cluster.
    Actors: the cluster's CPUs / `model_threads` unless `actors` says. `resume`: skip the inputs
    the part files under `out` already hold (without it, `out` must hold no part file)."""
    import ray
    from ray.util import ActorPool

    names = list_inputs(paths, recursive)
    done, first = written_inputs(out)
    if done and not resume:
        raise FileExistsError(f"{out} already holds part files: add --resume to continue that run, or choose another")
    todo = [n for n in names if n not in done]
    started = time.monotonic()
    if not ray.is_initialized():
        # Ray runs its workers at nice 15, so that they yield to its own daemons; a local Ray started
        # for this job is the machine's work, and beside any other load its actors would get a
        # fraction of the cores (measured here: 0.38x the folder mode's rate beside a training run)
        local = {"_system_config": {"worker_niceness": 0}} if address is None else {}
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR", **local)
    startup = time.monotonic() - started
    count = actors or max(1, int(ray.cluster_resources().get("CPU", 1)) // model_threads)
    remote = ray.remote(num_cpus=model_threads, max_restarts=-1, max_task_retries=-1)(Scorer)
    options = {"detect": detect, "max_faces": max_faces}
    # parts of at most part_files inputs, and at least four a actor, so that no core idles at the end
    part_files = max(1, min(part_files, -(-len(todo) // (4 * count))))
    size = min(count, -(-len(todo) // part_files)) or 1  # no more actors than parts
    pool = ActorPool([remote.remote(model_dir, runtime, model_threads, options) for _ in range(size)])
    totals = {"files": 0, "faces": 0, "errors": 0, "skipped": len(names) - len(todo), "parts": 0}
    began = time.monotonic()
    work = parts_of(todo, part_files, first)
    for result in pool.map_unordered(lambda actor, part: actor.score_part.remote(part[0], part[1], out), work):
        for key in ("files", "faces", "errors"):
            totals[key] += result[key]
        totals["parts"] += 1
        if progress:
            progress({**totals, "total": len(todo), "seconds": time.monotonic() - began})
    _remove_partials(out)  # left by attempts killed while writing; every part is now whole
    return {
        **totals,
        "actors": size,
        "startup_seconds": round(startup, 2),
        "seconds": round(time.monotonic() - began, 2),
    }


def progress_line(state: dict) -> None:
    """The folder mode's progress line, for a terminal."""
    rate = state["files"] / state["seconds"] if state["seconds"] > 0 else 0.0
    print(
        f"\r{state['files']}/{state['total']} files, {state['faces']} faces, {state['errors']} unreadable, "
        f"{rate:.1f} files/s",
        end="",
        file=sys.stderr,
    )
