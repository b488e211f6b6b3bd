"""A client of the real service (tests/conftest.py: `service`, the tiny model under uvicorn)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from harness.loadgen import Service


@pytest.fixture(scope="session")
def client(service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=60) as c:
        yield c
