"""A real service: `python -m app` under uvicorn on a loopback port, serving the tiny model."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Service:
    url: str
    process: subprocess.Popen
    ready_statuses: list[int] = field(default_factory=list)


def start_service(model_dir: Path, log_path: Path, **env: str) -> Service:
    port = free_port()
    environ = {**os.environ, "MODEL_DIR": str(model_dir), "HOST": "127.0.0.1", "PORT": str(port), **env}
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "app"], cwd=REPO, env=environ, stdout=log, stderr=subprocess.STDOUT
    )
    return Service(f"http://127.0.0.1:{port}", process)


def wait_ready(service: Service, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if service.process.poll() is not None:
            raise RuntimeError(f"service exited with {service.process.returncode}")
        try:
            status = httpx.get(service.url + "/ready", timeout=2).status_code
            service.ready_statuses.append(status)
            if status == 200:
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


@pytest.fixture(scope="session")
def service(tiny_model_dir: Path, tmp_path_factory) -> Iterator[Service]:
    svc = start_service(tiny_model_dir, tmp_path_factory.mktemp("logs") / "service.log")
    try:
        wait_ready(svc)
        yield svc
    finally:
        stop(svc)


@pytest.fixture(scope="session")
def client(service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=60) as c:
        yield c
