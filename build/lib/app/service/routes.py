"""The endpoints. Work that blocks (decoding, detection, inference) runs off the event loop."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Annotated

import numpy as np
from fastapi import APIRouter, File, Query, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, Response

from app.estimator import Estimator, Prediction
from app.service.errors import ApiError
from app.service.schemas import ErrorResponse, FuseRequest, FuseResponse, Health, PredictResponse, Ready

router = APIRouter()
PAGE = Path(__file__).parent / "static" / "index.html"
CLIENT_GONE = 499  # nginx's "client closed request": for the log and the metrics
ERRORS = {code: {"model": ErrorResponse} for code in (400, 408, 413, 415, 422, 503)}


def _estimator(request: Request) -> Estimator:
    estimator = getattr(request.app.state, "estimator", None)
    if estimator is None:
        raise ApiError(503, "not_ready", "the model is still loading", headers={"Retry-After": "5"})
    return estimator


@router.post("/predict", response_model=PredictResponse, response_model_exclude_none=False, responses=ERRORS)
async def predict(
    request: Request,
    file: Annotated[UploadFile, File(description="a photo: JPEG, PNG, WebP or BMP")],
    max_faces: Annotated[int, Query(ge=1, description="at most this many faces, largest first")] = 10,
    detect: Annotated[bool, Query(description="false: the whole image is one face crop, resized as is")] = True,
    include_distribution: Annotated[bool, Query(description="false: omit the per-age probabilities")] = True,
) -> PredictResponse:
    """Estimate the age of every face in an uploaded photo."""
    estimator = _estimator(request)
    limit = request.app.state.settings.max_faces_limit
    if max_faces > limit:
        raise ApiError(422, "invalid_request", f"max_faces: at most {limit}")
    metrics, in_flight = request.app.state.metrics, request.app.state.in_flight
    if request.app.state.draining:
        raise ApiError(
            503,
            "shutting_down",
            "this replica is shutting down; retry (another replica will answer)",
            headers={"Retry-After": "1", "Connection": "close"},
        )
    if len((await request.form()).getlist("file")) > 1:
        raise ApiError(422, "invalid_request", "file: send one image per request")
    data = await file.read()
    if not in_flight.try_acquire():
        metrics.rejected.inc()
        raise ApiError(
            503,
            "overloaded",
            f"{in_flight.limit} predictions are already running; retry shortly",
            headers={"Retry-After": "1"},
        )
    gone = threading.Event()
    loop = asyncio.get_running_loop()
    job = request.app.state.executor.submit(estimator.prediction, data, detect, max_faces, gone.is_set)
    # the slot is freed when the work ends, not when the client leaves: the pool never holds more
    job.add_done_callback(lambda _: loop.call_soon_threadsafe(in_flight.release))
    prediction = await _unless_client_leaves(request, job, gone)
    if prediction is None:
        metrics.abandoned.inc()
        return Response(status_code=CLIENT_GONE)  # nobody reads it; the log and metrics do
    metrics.faces.observe(len(prediction.faces))
    metrics.inference.observe(prediction.timings_ms["infer"] / 1000)
    return PredictResponse(**estimator.answer_from(prediction, include_distribution))


@router.post("/fuse", response_model=FuseResponse, responses=ERRORS)
async def fuse_frames(request: Request, body: FuseRequest) -> FuseResponse:
    """One answer for one person from the distributions of their frames (a video, a webcam, a
    burst of photos), fused as `dex-age predict clip.mp4` fuses them: calibrated for frames of one
    person, which are not independent (README, Video)."""
    estimator = _estimator(request)
    model, limit = estimator.model, request.app.state.settings.video_max_frames
    if len(body.distributions) > limit:
        raise ApiError(422, "invalid_request", f"distributions: at most {limit} (VIDEO_MAX_FRAMES)")
    if any(len(d) != len(model.ages) for d in body.distributions):
        raise ApiError(
            422, "invalid_request", f"distributions: each needs {len(model.ages)} probabilities (one an age)"
        )
    p = np.array(body.distributions, dtype=np.float64)
    sums = p.sum(axis=1)
    if not np.all(np.isfinite(p)) or np.any(p < 0) or not np.all(np.isfinite(sums)) or np.any(sums <= 0):
        raise ApiError(422, "invalid_request", "distributions: probabilities must be finite, not negative, not all 0")
    return FuseResponse(
        model=estimator.model_ref(),
        correlation=model.fusion.correlation,
        softening=model.fusion.softening,
        **estimator.fused_fields(p / sums[:, None], include_distribution=True),
    )


async def _unless_client_leaves(request: Request, job: Future, gone: threading.Event) -> Prediction | None:
    """The job's result, or None once the client has disconnected: a job still queued is dropped,
    one running stops at its next stage."""
    result = asyncio.wrap_future(job)
    leaving = asyncio.ensure_future(_disconnect(request))
    await asyncio.wait({result, leaving}, return_when=asyncio.FIRST_COMPLETED)
    if result.done():
        leaving.cancel()
        return result.result()
    gone.set()
    job.cancel()
    result.cancel()
    return None


async def _disconnect(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    """A page to try the service in a browser: self-contained, works offline."""
    return FileResponse(PAGE, media_type="text/html")


@router.get("/health", response_model=Health)
async def health() -> Health:
    """Liveness: the process answers."""
    return Health(status="ok")


@router.get("/ready", response_model=Ready, responses={503: {"model": Ready}})
async def ready(request: Request):
    """Readiness: 200 once the model is loaded and warm; 503 before, and while draining after SIGTERM."""
    estimator = getattr(request.app.state, "estimator", None)
    if request.app.state.draining:
        return JSONResponse(Ready(status="draining").model_dump(), status_code=503, headers={"Retry-After": "5"})
    if estimator is None:
        return JSONResponse(Ready(status="loading").model_dump(), status_code=503, headers={"Retry-After": "5"})
    card = estimator.model.card
    return Ready(status="ready", model={"name": card["name"], "version": card["version"]})


@router.get("/model", responses={503: {"model": ErrorResponse}})
async def model_card(request: Request) -> dict:
    """The model card (model.json) and the runtime serving it."""
    estimator = _estimator(request)
    return {**estimator.model.card, "runtime": request.app.state.runtime}


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    """Prometheus metrics: requests by endpoint and status, latencies, faces, inference time, load."""
    body, media_type = request.app.state.metrics.render()
    return Response(body, media_type=media_type)
