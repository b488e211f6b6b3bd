"""Request ids, one structured log line per request, and Prometheus metrics at /metrics.

Worker processes of one server (`uvicorn app.service.main:app --workers N`) count together: each keeps its
metrics in prometheus_client's multiprocess files, in a folder named after their parent process
(or in PROMETHEUS_MULTIPROC_DIR when that is set, e.g. under gunicorn), and /metrics sums them.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import tempfile
import time
import uuid
from pathlib import Path


def _share_metrics_between_workers() -> None:
    """Must run before prometheus_client is imported: it chooses its value store at import."""
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ or multiprocessing.parent_process() is None:
        return
    folder = Path(tempfile.gettempdir()) / f"dex-age-metrics-{os.getppid()}"
    folder.mkdir(exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


_share_metrics_between_workers()

from prometheus_client import (  # noqa: E402
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send  # noqa: E402

SHARED = "PROMETHEUS_MULTIPROC_DIR" in os.environ

access_log = logging.getLogger("app.access")


class Metrics:
    """The service's metrics, in a registry of its own (one per app, so tests do not collide)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "dex_requests_total", "HTTP requests by endpoint and status", ["endpoint", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "dex_request_duration_seconds",
            "HTTP request latency by endpoint",
            ["endpoint"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=self.registry,
        )
        self.faces = Histogram(
            "dex_faces_per_request",
            "faces found per prediction",
            buckets=(0, 1, 2, 3, 5, 10, 20, 50),
            registry=self.registry,
        )
        self.inference = Histogram(
            "dex_inference_duration_seconds",
            "crop and model forward time per prediction",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.in_flight = Gauge(
            "dex_predictions_in_flight", "predictions in progress", registry=self.registry, multiprocess_mode="livesum"
        )
        self.rejected = Counter(
            "dex_predictions_rejected_total",
            "predictions refused because too many were in flight",
            registry=self.registry,
        )
        self.abandoned = Counter(
            "dex_predictions_abandoned_total",
            "predictions dropped or stopped because their client had gone",
            registry=self.registry,
        )

    def render(self) -> tuple[bytes, str]:
        """The exposition text and its content type: this process's metrics, or every worker's."""
        registry = self.registry
        if SHARED:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST

    @staticmethod
    def process_ended() -> None:
        if SHARED:
            multiprocess.mark_process_dead(os.getpid())  # its live gauges stop counting


class RequestLog:
    """Pure ASGI middleware: gives each request an id (X-Request-ID), logs method, path, status and
    duration as one JSON line (never the body), and counts it in the metrics."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex[:16]
        scope.setdefault("state", {})["request_id"] = request_id
        start = time.perf_counter()
        status = 500  # what the client gets if the app raises before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", []).append((b"x-request-id", request_id.encode()))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            duration = time.perf_counter() - start
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or "unmatched"
            self.metrics.requests.labels(endpoint, str(status)).inc()
            self.metrics.latency.labels(endpoint).observe(duration)
            access_log.info(
                json.dumps(
                    {
                        "request_id": request_id,
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(duration * 1000, 2),
                    }
                )
            )
