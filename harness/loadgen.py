"""Start the real service on a loopback port and put a bounded load on it.

Shared by the tests, the load test and the benchmark, so that all three start and measure the
service the same way. Traffic goes to 127.0.0.1 only, in a fixed number of requests.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Service:
    url: str
    process: subprocess.Popen
    started: float
    ready_statuses: list[int] = field(default_factory=list)
    seconds_to_ready: float | None = None


def start_service(model_dir: Path, log_path: Path, command: list[str] | None = None, **env: str) -> Service:
    """`python -m app` (or `command`, where {port} stands for the port) on a free loopback port."""
    port = free_port()
    environ = {**os.environ, "MODEL_DIR": str(model_dir), "HOST": "127.0.0.1", "PORT": str(port), **env}
    argv = [arg.format(port=port) for arg in command] if command else [sys.executable, "-m", "app"]
    with log_path.open("w") as log:
        process = subprocess.Popen(argv, cwd=REPO, env=environ, stdout=log, stderr=subprocess.STDOUT)
    return Service(f"http://127.0.0.1:{port}", process, time.monotonic())


def wait_ready(service: Service, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"service exited with {service.process.returncode}")
        try:
            status = httpx.get(service.url + "/ready", timeout=2).status_code
            service.ready_statuses.append(status)
            if status == 200:
                service.seconds_to_ready = time.monotonic() - service.started
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise TimeoutError("service not ready")


def stop(service: Service) -> None:
    service.process.terminate()
    try:
        service.process.wait(15)
    except subprocess.TimeoutExpired:
        service.process.kill()


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024


async def _load(url: str, files: dict, requests: int, concurrency: int, params: dict, headers: dict) -> dict:
    latencies: list[float] = []
    server_ms: list[float] = []  # the service's own pipeline time (timings_ms.total) of each answer
    statuses: dict[int, int] = {}
    errors = 0
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(requests):
        queue.put_nowait(i)

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal errors
        while not queue.empty():
            queue.get_nowait()
            start = time.perf_counter()
            try:
                r = await client.post("/predict", files=files, params=params)
            except httpx.HTTPError:
                errors += 1
                r = None
            latencies.append(time.perf_counter() - start)
            if r is not None:
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code == 200:
                    server_ms.append(r.json()["timings_ms"]["total"])

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits, headers=headers) as client:
        start = time.perf_counter()
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {
        "requests": requests,
        "concurrency": concurrency,
        "seconds": elapsed,
        "rps": requests / elapsed,
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "p99_ms": float(np.percentile(ms, 99)),
        # at concurrency 1, p50_ms over this is what HTTP adds, both measured on the same requests
        "server_pipeline_p50_ms": float(np.median(server_ms)) if server_ms else None,
        "statuses": statuses,
        "server_errors": sum(n for code, n in statuses.items() if code >= 500),
        "transport_errors": errors,
    }


def load(
    url: str,
    image: bytes,
    requests: int,
    concurrency: int,
    params: dict | None = None,
    headers: dict | None = None,
) -> dict:
    """POST `image` to /predict `requests` times from `concurrency` async clients; latency stats."""
    files = {"file": ("image", image)}
    return asyncio.run(_load(url, files, requests, concurrency, params or {}, headers or {}))


def failed_start(model_dir: Path, tmp_path: Path, **env: str) -> tuple[int, str]:
    """Start the service on `model_dir` (with `env`) expecting it to stop: its exit code and its log."""
    service = start_service(model_dir, tmp_path / "service.log", **env)
    try:
        code = service.process.wait(120)
    except subprocess.TimeoutExpired:
        service.process.kill()
        raise
    return code, (tmp_path / "service.log").read_text()
