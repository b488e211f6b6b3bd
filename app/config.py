"""All settings, read from environment variables (e.g. MODEL_DIR, MAX_UPLOAD_BYTES)."""

from __future__ import annotations

import multiprocessing
import os
import sys
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.faces.detection import MAX_PIXELS, MIN_CONFIDENCE, MIN_FACE, YUNET_MAX_PIXELS
from app.faces.detectors import DETECTORS
from app.model.distribution import INTERVAL_MASS
from app.model.model_dir import DEFAULT_RUNTIME, PRECISIONS, RUNTIMES

REPO = Path(__file__).resolve().parents[1]
# the shipped model: in the checkout the package runs from (an editable install), else in the
# working directory's models/ (a `pip install .` run from the repository's root)
SHIPPED_MODEL = REPO / "models" / "dex-age" if (REPO / "models" / "dex-age").is_dir() else Path("models/dex-age")


def _cores() -> int:
    """The cores this process may use (a container's CPU set, not the host's count, where known)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _workers() -> int:
    """How many worker processes share the cores: 1, or N for a worker of `uvicorn --workers N`
    (or `fastapi run --workers N`), whose command line a spawned worker inherits; else
    WEB_CONCURRENCY, which uvicorn reads as the default for --workers."""
    if multiprocessing.parent_process() is None:
        return 1
    args = sys.argv
    for i, arg in enumerate(args):
        if arg == "--workers" and i + 1 < len(args) and args[i + 1].isdigit():
            return max(1, int(args[i + 1]))
        if arg.startswith("--workers=") and arg.split("=", 1)[1].isdigit():
            return max(1, int(arg.split("=", 1)[1]))
    concurrency = os.environ.get("WEB_CONCURRENCY", "1")
    return max(1, int(concurrency)) if concurrency.isdigit() else 1


def _compute_threads() -> int:
    return max(1, _cores() // _workers())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, protected_namespaces=())

    model_dir: Path = Field(SHIPPED_MODEL, description="model directory to serve")
    model_runtime: Literal[tuple(RUNTIMES)] = Field(DEFAULT_RUNTIME, description="model.onnx or the SavedModel")
    model_precision: Literal[PRECISIONS] = Field(
        "auto", description="auto: the int8 graph where model.json says its parity passed (onnx only); float: never"
    )
    compute_threads: int = Field(
        default_factory=_compute_threads,
        gt=0,
        description="predictions computed in parallel (default: one per core, shared among uvicorn's workers)",
    )
    model_threads: int = Field(1, gt=0, description="threads inside one model forward (and OpenCV's detection)")
    max_upload_bytes: int = Field(10 * 1024 * 1024, gt=0, description="largest request body accepted")
    max_image_pixels: int = Field(40_000_000, gt=0, description="largest decoded image (width × height)")
    upload_timeout: float = Field(30.0, gt=0, description="seconds a request body may take to arrive")
    max_in_flight: int = Field(32, gt=0, description="predictions running at once; more get 503 at once")
    max_header_bytes: int = Field(32768, ge=1024, description="largest request line plus headers (431 above)")
    max_headers: int = Field(100, gt=0, description="most header lines in a request (431 above)")
    header_timeout: float = Field(15.0, gt=0, description="seconds a request's headers may take to arrive")
    keep_alive_timeout: float = Field(5.0, gt=0, description="seconds an idle keep-alive connection stays open")
    max_connections: int = Field(256, gt=0, description="open connections at once; more are answered 503 and closed")
    drain_seconds: float = Field(
        5.0, ge=0, description="after SIGTERM, answer 503 to new work for at least this long before stopping"
    )
    shutdown_timeout: float = Field(20.0, gt=1, description="after SIGTERM, stop within this many seconds")
    api_key: str | None = Field(None, description="when set, required as X-API-Key on all but /health, /ready")
    cors_origins: list[str] = Field([], description='origins allowed by CORS, e.g. ["https://example.org"]')
    max_faces_limit: int = Field(50, gt=0, description="largest max_faces a request may ask for")
    detector: Literal[DETECTORS] = Field(
        DETECTORS[0],
        description="yunet: YuNet, faces aligned by five landmarks; dnn: OpenCV's res10 DNN detector; haar: its Haar "
        "cascade (both box only)",
    )
    min_face_confidence: float = Field(
        MIN_CONFIDENCE, ge=0, le=1, description="yunet, dnn: smallest detection score reported as a face"
    )
    detect_min_face: int = Field(
        MIN_FACE, gt=0, description="yunet, dnn: smallest face, in pixels, to look for in large photos"
    )
    detect_max_pixels: int | None = Field(
        None,
        gt=0,
        description=f"yunet, dnn: most pixels detection looks at (bounds the time on large photos; default "
        f"{YUNET_MAX_PIXELS:,} for yunet, {MAX_PIXELS:,} for dnn's detail pass)",
    )
    detect_max_side: int = Field(1024, gt=0, description="haar: detection runs on a copy downscaled to this side")
    tta: Literal["none", "flip"] = Field(
        "none", description="flip: average each face's distribution with its mirror image's (test-time augmentation)"
    )
    interval_mass: float = Field(INTERVAL_MASS, gt=0, lt=1, description="probability mass of age_interval")
    video_fps: float = Field(4.0, gt=0, le=60, description="frames a second of a video that are estimated")
    video_max_frames: int = Field(2400, gt=0, description="most sampled frames read from one video")
    video_max_seconds: float = Field(600.0, gt=0, description="most seconds of one video read")
    host: str = "0.0.0.0"
    port: int = 8000
    log_level: str = "info"
