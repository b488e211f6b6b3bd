"""A real service: `python -m app` under uvicorn on a loopback port, serving the tiny model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scripts.loadgen import Service, start_service, stop, wait_ready


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
