"""Ages in a video: frames sampled, faces followed across them, one fused answer per person.

    from app.estimator import Estimator
    from app.video import predict_video

    answer = predict_video(Estimator.from_dir(runtime="onnx"), "clip.mp4", fps=4)
    answer["people"][0]["age"], answer["people"][0]["age_interval"]

Frames are read with OpenCV's VideoCapture (what opencv-python-headless decodes) and `fps` of them
a second go through the estimator. A face is the same person as a face of the last frames when
their boxes overlap enough (IoU, greedy, best first); a person unseen for `max_gap` seconds is
gone. Each person's distributions are fused by the model's rule (Estimator.fused_fields).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from app.config import Settings
from app.estimator import Estimator, FaceResult
from app.faces.crop import Box
from app.imaging import ImageError

# FFmpeg's own complaints about a broken file ("moov atom not found") would go to stderr beside our
# one clear error; a user who wants them sets OPENCV_FFMPEG_LOGLEVEL
os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
VIDEO_SUFFIXES = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp"})
MIN_IOU = 0.3  # boxes of one person in two sampled frames overlap at least this much
MAX_GAP = 1.0  # seconds a person may go unseen (turned away, missed) and still be the same track


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


@dataclass(frozen=True)
class Limits:
    """What one video may cost: sampled frames and seconds of video read (Settings.video_*)."""

    max_frames: int
    max_seconds: float

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(settings.video_max_frames, settings.video_max_seconds)


class VideoFrames:
    """`fps` frames a second of a video, as (time in seconds, RGB frame), within `limits`.

    Opening raises ImageError (unreadable_video) for a file OpenCV cannot open; iterating, for one
    with no frame it can decode. After iterating, `truncated` says why it stopped early, if it did.
    """

    def __init__(self, path: Path, fps: float, limits: Limits, max_pixels: int) -> None:
        if not Path(path).is_file():
            raise ImageError("unreadable_file", "no such file")
        if Path(path).stat().st_size == 0:
            raise ImageError("empty_file", "the file is empty")
        self.capture = cv2.VideoCapture(str(path))
        if not self.capture.isOpened():
            self.capture.release()
            raise ImageError("unreadable_video", "not a video OpenCV can decode (or an empty or broken file)")
        native = self.capture.get(cv2.CAP_PROP_FPS)
        self.native_fps = native if math.isfinite(native) and 1 <= native <= 1000 else 30.0
        count = self.capture.get(cv2.CAP_PROP_FRAME_COUNT)
        self.duration = count / self.native_fps if math.isfinite(count) and count > 0 else None  # None: unknown
        self.fps, self.limits, self.max_pixels = fps, limits, max_pixels
        self.truncated: str | None = None

    def __iter__(self) -> Iterator[tuple[float, np.ndarray]]:
        step = max(1.0, self.native_fps / self.fps)  # read every step-th frame, grab the others
        index, next_read, sampled = 0, 0.0, 0
        try:
            while True:
                if index < next_read:
                    if not self.capture.grab():  # a frame skipped: not decoded to pixels
                        break
                    index += 1
                    continue
                ok, bgr = self.capture.read()
                if not ok:
                    break
                t = index / self.native_fps
                if t > self.limits.max_seconds:
                    self.truncated = f"only the first {self.limits.max_seconds:g} s were read (VIDEO_MAX_SECONDS)"
                    break
                if sampled >= self.limits.max_frames:
                    self.truncated = (
                        f"only the first {self.limits.max_frames} sampled frames were read (VIDEO_MAX_FRAMES)"
                    )
                    break
                if bgr.shape[0] * bgr.shape[1] > self.max_pixels:
                    size = f"{bgr.shape[1]}×{bgr.shape[0]}"
                    raise ImageError(
                        "image_too_large", f"its frames have {size} pixels; the limit is {self.max_pixels:,}"
                    )
                yield t, np.ascontiguousarray(bgr[:, :, ::-1])
                sampled += 1
                next_read += step
                index += 1
        finally:
            self.capture.release()
        if sampled == 0:
            raise ImageError("unreadable_video", "the video has no frame OpenCV can decode")


def iou(a: Box, b: Box) -> float:
    w = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
    h = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    inter = max(w, 0) * max(h, 0)
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


@dataclass
class Track:
    """One person: each sampled frame they were found in, as (time, face)."""

    id: int
    seen: list[tuple[float, FaceResult]] = field(default_factory=list)

    @property
    def last(self) -> tuple[float, FaceResult]:
        return self.seen[-1]


class Tracker:
    """Faces of consecutive sampled frames joined into people by box overlap."""

    def __init__(self, min_iou: float = MIN_IOU, max_gap: float = MAX_GAP) -> None:
        self.min_iou, self.max_gap = min_iou, max_gap
        self.tracks: list[Track] = []

    def update(self, t: float, faces: list[FaceResult]) -> list[int]:
        """Each face's track id, in the faces' order."""
        alive = [k for k in self.tracks if t - k.last[0] <= self.max_gap]
        # the best overlap first; a tie goes to the older track, then the first face (as on the page)
        pairs = sorted(
            ((iou(k.last[1].box, f.box), i, j) for i, k in enumerate(alive) for j, f in enumerate(faces)),
            key=lambda pair: (-pair[0], pair[1], pair[2]),
        )
        ids: list[int | None] = [None] * len(faces)
        taken: set[int] = set()
        for overlap, i, j in pairs:
            if overlap < self.min_iou:
                break
            if i in taken or ids[j] is not None:
                continue
            taken.add(i)
            ids[j] = alive[i].id
            alive[i].seen.append((t, faces[j]))
        for j, face in enumerate(faces):
            if ids[j] is None:
                track = Track(len(self.tracks), [(t, face)])
                self.tracks.append(track)
                ids[j] = track.id
        return [int(i) for i in ids]


def person(estimator: Estimator, track: Track) -> dict:
    """A track's fused answer: age, spread and interval of the fused distribution, and the face at
    its best frame (the highest detection score, else the largest box)."""
    t_best, best = max(track.seen, key=lambda tf: (tf[1].detection_score or 0.0, tf[1].box.width * tf[1].box.height))
    return {
        "track": track.id,
        "time_first": round(track.seen[0][0], 3),
        "time_last": round(track.last[0], 3),
        **estimator.fused_fields(np.stack([face.probabilities for _, face in track.seen])),
        "best_time": round(t_best, 3),
        "best_face": estimator.face_fields(best, include_distribution=False),
    }


def predict_video(
    estimator: Estimator,
    path: str | Path,
    fps: float | None = None,
    limits: Limits | None = None,
    max_faces: int = 10,
    per_frame: bool = False,
    progress: Callable[[float, float | None], None] | None = None,
) -> dict:
    """Every person in the video at `path`, as {"model", "video", "people", "frames"}: "people" one
    fused answer each (longest seen first), "frames" (with per_frame) each sampled frame's faces
    with their track. fps and limits default to the settings (VIDEO_FPS, VIDEO_MAX_*). `progress`
    is called with each sampled frame's time and the video's duration (None: unknown)."""
    settings = Settings() if fps is None or limits is None else None
    fps = settings.video_fps if fps is None else fps
    if not (fps > 0 and math.isfinite(fps)):
        raise ValueError(f"fps must be a positive number, not {fps}")
    video = VideoFrames(Path(path), fps, limits or Limits.from_settings(settings), estimator.max_pixels)
    tracker, frames, size, read = Tracker(), [], (0, 0), 0
    for t, rgb in video:
        size, read = (rgb.shape[1], rgb.shape[0]), read + 1
        faces = estimator.prediction(rgb, max_faces=max_faces).faces
        ids = tracker.update(t, faces)
        if per_frame:
            fields = (estimator.face_fields(f, include_distribution=False) for f in faces)
            frames += [{"time": round(t, 3), "track": k, **f} for k, f in zip(ids, fields, strict=True)]
        if progress:
            progress(t, video.duration)
    people = sorted((person(estimator, k) for k in tracker.tracks), key=lambda p: (-p["frames"], p["track"]))
    return {
        "model": estimator.model_ref(),
        "video": {"width": size[0], "height": size[1], "fps": fps, "frames_read": read, "truncated": video.truncated},
        "people": people,
        "frames": frames if per_frame else None,
    }
