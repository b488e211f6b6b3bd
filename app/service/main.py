"""The FastAPI app. The model loads in the background so that /health and /ready answer at once;
a model directory that cannot be served stops the process with one clear log line."""

from __future__ import annotations

import asyncio
import logging
import os
import platform
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from app.config import Settings
from app.estimator import Estimator
from app.service import errors
from app.service.limits import BodyLimit, CloseWhileDraining, HeaderLimit, InFlight
from app.service.observability import Metrics, RequestLog
from app.service.routes import router
from app.service.security import ApiKey

log = logging.getLogger("app")


STARTUP_FAILURE = 3  # uvicorn's code for it: with --workers, the supervisor then stops instead of restarting


def _stop_process() -> None:
    """Under `uvicorn app.service.main:app` (or `fastapi run`): leave at once, with uvicorn's startup-failure
    code. Nothing is lost: a service whose model never loaded has served no prediction."""
    logging.shutdown()
    os._exit(STARTUP_FAILURE)


def _load(app: FastAPI, settings: Settings) -> None:
    import cv2

    estimator = Estimator.from_settings(settings)  # validates the model directory and runs a warm-up batch
    app.state.runtime = {
        "runtime": settings.model_runtime,
        "runtime_version": _runtime_version(settings.model_runtime),
        "precision": estimator.model.precision,  # int8 where the card says it passed, unless MODEL_PRECISION=float
        "opencv": cv2.__version__,
        "python": platform.python_version(),
        "model_dir": settings.model_dir.name,  # the folder's name: the host's paths are not the client's business
        "detector": estimator.detector.describe(),
        "compute_threads": settings.compute_threads,
        "model_threads": settings.model_threads,
        "tta": settings.tta,
    }
    app.state.estimator = estimator


def _runtime_version(runtime: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    for package in {"tensorflow": ("tensorflow-cpu", "tensorflow"), "onnx": ("onnxruntime",)}[runtime]:
        try:
            return version(package)
        except PackageNotFoundError:
            continue
    return "unknown"


def _log_to_stderr(level: str) -> None:
    """Under `uvicorn app.service.main:app`, uvicorn configures its own loggers only: give ours a handler in
    its format. (`python -m app` has configured logging before it serves.)"""
    if logging.getLogger().handlers or log.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(levelname)s:     %(name)s: %(message)s"))
    log.addHandler(handler)
    log.setLevel(level.upper())


def create_app(settings: Settings | None = None, on_fatal: Callable[[], None] = _stop_process) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        _log_to_stderr(settings.log_level)

        async def load() -> None:
            try:
                await asyncio.to_thread(_load, app, settings)
                log.info("model %s loaded and warm: ready", settings.model_dir)
            except Exception as exc:  # noqa: BLE001 - any failure here means: cannot serve
                app.state.fatal = str(exc)
                log.error("cannot serve: %s", exc)
                on_fatal()

        task = asyncio.create_task(load())
        yield
        task.cancel()
        app.state.executor.shutdown(wait=False, cancel_futures=True)
        Metrics.process_ended()

    app = FastAPI(
        title="dex-age",
        version="0.1.0",
        description="Face age estimation with DEX: the expected age, its spread and the full distribution.",
        lifespan=lifespan,
    )
    app.state.settings, app.state.estimator, app.state.fatal, app.state.draining = settings, None, None, False
    app.state.metrics = Metrics()
    app.state.in_flight = InFlight(settings.max_in_flight, app.state.metrics.in_flight)
    app.state.executor = ThreadPoolExecutor(settings.compute_threads, thread_name_prefix="predict")
    errors.install(app)
    app.include_router(router)
    # the last added runs first: close while draining, log every request, count its headers, then CORS,
    # the key, the body limits
    app.add_middleware(BodyLimit, max_bytes=settings.max_upload_bytes, timeout=settings.upload_timeout)
    if settings.api_key:
        app.add_middleware(ApiKey, key=settings.api_key)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "Content-Type"],
        )
    app.add_middleware(HeaderLimit, max_headers=settings.max_headers, max_bytes=settings.max_header_bytes)
    app.add_middleware(RequestLog, metrics=app.state.metrics)
    app.add_middleware(CloseWhileDraining, draining=lambda: app.state.draining)
    return app


# `uvicorn app.service.main:app`, `fastapi run app/service/main.py`: the app as configured by the environment
app = create_app()
