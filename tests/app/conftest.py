"""A client of the real service (tests/conftest.py: `service`, the tiny model under uvicorn)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from harness.clips import panning_clip
from harness.loadgen import Service


@pytest.fixture(scope="session")
def client(service: Service) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=service.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="session")
def clips(test_images, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    photo = test_images / "face.jpg"  # four faces
    panning_clip(root / "four.avi", photo, seconds=3, fps=25)
    panning_clip(root / "four.mp4", photo, seconds=3, fps=25, fourcc="mp4v")
    (root / "empty.mp4").write_bytes(b"")
    (root / "text.mov").write_text("not a video")
    (root / "cut.mp4").write_bytes((root / "four.mp4").read_bytes()[:4000])
    return root
