"""The rows `dex-age predict` writes, defined once for every output (CSV, JSONL, Parquet): the
columns, the files a set of paths names, and one file's rows — its faces, a video's people, or one
error row."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from app.faces.detection import LANDMARKS

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
TEXT_COLUMNS = {"file", "kind", "error", "detail"}
INTEGER_COLUMNS = {"face", "track", "frames", "x", "y", "width", "height", "age_low", "age_high"}


def files_in(paths: list[Path], recursive: bool) -> Iterator[Path]:
    """The files named, and those in the folders named (sorted; hidden ones skipped)."""
    for path in paths:
        if path.is_dir():
            found = path.rglob("*") if recursive else path.iterdir()
            yield from sorted(p for p in found if p.is_file() and not p.name.startswith("."))
        else:
            yield path  # a missing file becomes an error row


def error_row(path: Path | str, exc: Exception) -> dict:
    """The one row of a file that cannot be read: the API's error code and sentence."""
    from app.imaging import ImageError

    if isinstance(exc, ImageError):
        return {"file": str(path), "error": exc.error, "detail": exc.detail}
    if isinstance(exc, OSError):
        return {"file": str(path), "error": "unreadable_file", "detail": exc.strerror or "the file cannot be read"}
    return {"file": str(path), "error": "internal_error", "detail": "the estimator failed on this file"}


def answer_rows(path: Path | str, answer: dict) -> list[dict]:
    """An image's rows from its answer: one a face (with its probabilities under "distribution"
    when the answer has them), or one row without a face."""
    if not answer["faces"]:
        return [{"file": str(path)}]
    rows = [{"file": str(path), "kind": "face", "face": i, **face_row(face)} for i, face in enumerate(answer["faces"])]
    for row, face in zip(rows, answer["faces"], strict=True):
        if face["distribution"] is not None:
            row["distribution"] = face["distribution"]["probabilities"]
    return rows


def rows_for(
    estimator, path: Path, *, detect: bool, max_faces: int, video: dict, include_distribution: bool = False
) -> list[dict]:
    """The rows of one file: its faces (with `include_distribution`, each with its probabilities
    under "distribution"), or a video's people (and with video["per_frame"] their frames); one
    error row for a file that cannot be read."""
    from app.video import is_video

    try:
        if is_video(path):
            return video_rows(estimator, path, max_faces=max_faces, **video)
        answer = estimator.answer(path, detect=detect, max_faces=max_faces, include_distribution=include_distribution)
    except Exception as exc:  # noqa: BLE001 - one odd file must not stop a run over thousands
        return [error_row(path, exc)]
    return answer_rows(path, answer)


def image_rows(estimator, paths: list[Path], *, detect: bool, max_faces: int) -> list[list[dict]]:
    """The rows of several images (not videos), their faces through one forward
    (Estimator.predictions), each face with its distribution."""
    rows = []
    for path, prediction in zip(paths, estimator.predictions(paths, detect, max_faces), strict=True):
        if isinstance(prediction, Exception):
            rows.append([error_row(path, prediction)])
        else:
            rows.append(answer_rows(path, estimator.answer_from(prediction, include_distribution=True)))
    return rows


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
