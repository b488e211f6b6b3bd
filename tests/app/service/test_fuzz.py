"""Hostile and odd uploads: every one gets a valid answer or a 4xx JSON error, never a 5xx."""

from __future__ import annotations

import io
import struct
import zlib

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from harness.loadgen import rss_mb


def _save(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    body = response.json()
    if response.status_code == 200:
        assert isinstance(body["faces"], list)
    else:
        assert 400 <= response.status_code < 500
        assert set(body) >= {"error", "detail"}


def _post(client, data: bytes, name: str = "upload") -> httpx.Response:
    return client.post("/predict", files={"file": (name, data)})


@pytest.fixture(scope="module")
def seeds(test_images) -> dict[str, bytes]:
    photo = Image.open(test_images / "grace_hopper.bmp").convert("RGB").resize((128, 150))
    return {
        "jpeg": _save(photo, "JPEG", quality=90),
        "png": _save(photo, "PNG"),
        "webp": _save(photo, "WEBP", quality=80),
    }


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=4096))
def test_random_bytes(client, data):
    _check(_post(client, data))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from(["jpeg", "png", "webp"]),
    cut=st.floats(0.0, 1.0),
    flips=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 7)), max_size=8),
)
def test_truncated_and_bit_flipped_images(client, seeds, kind, cut, flips):
    data = bytearray(seeds[kind][: max(1, int(len(seeds[kind]) * cut))])
    for where, bit in flips:
        data[int(where * (len(data) - 1))] ^= 1 << bit
    _check(_post(client, bytes(data), f"x.{kind}"))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares width×height but carries a tiny body: a decompression bomb's header."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + chunk(b"IEND", b"")
    )


def _odd_images() -> dict[str, bytes]:
    rgb = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 30, 3), dtype=np.uint8))
    frames = [Image.new("RGB", (20, 20), c) for c in ("red", "green", "blue")]
    odd = {
        "1x1.png": _save(Image.new("RGB", (1, 1)), "PNG"),
        "1x10000.png": _save(Image.new("L", (1, 10000)), "PNG"),
        "10000x1.jpg": _save(Image.new("RGB", (10000, 1)), "JPEG"),
        "gray.jpg": _save(rgb.convert("L"), "JPEG"),
        "rgba.png": _save(rgb.convert("RGBA"), "PNG"),
        "palette.png": _save(rgb.convert("P"), "PNG"),
        "16bit.png": _save(Image.fromarray(np.arange(1200, dtype=np.uint16).reshape(30, 40) * 50), "PNG"),
        "cmyk.jpg": _save(rgb.convert("CMYK"), "JPEG"),
        "animated.gif": _save(frames[0], "GIF", save_all=True, append_images=frames[1:]),
        "animated.webp": _save(frames[0], "WEBP", save_all=True, append_images=frames[1:]),
        "bomb.png": _png_header_only(30000, 30000),
        "bomb-wide.png": _png_header_only(2**31 - 1, 1),
        "lying-size.png": _png_header_only(4000, 3000),
    }
    for orientation in range(1, 9):
        exif = Image.Exif()
        exif[0x0112] = orientation
        odd[f"exif{orientation}.jpg"] = _save(rgb, "JPEG", exif=exif)
    return odd


ODD = _odd_images()


@pytest.mark.parametrize("name", sorted(ODD))
def test_odd_valid_and_hostile_images(client, name):
    _check(_post(client, ODD[name], name))


def test_bombs_are_refused_as_too_large(client):
    for name in ("bomb.png", "bomb-wide.png"):
        r = _post(client, ODD[name], name)
        assert r.status_code == 413 and r.json()["error"] == "image_too_large"


def test_memory_stays_bounded_over_hostile_uploads(client, service):
    for name in sorted(ODD):  # warm every code path once
        _post(client, ODD[name], name)
    before = rss_mb(service.process.pid)
    for _ in range(5):
        for name in sorted(ODD):
            _check(_post(client, ODD[name], name))
    growth_mb = rss_mb(service.process.pid) - before
    assert growth_mb < 100, f"resident memory grew by {growth_mb:.0f} MB"


@pytest.mark.parametrize(
    "kwargs",
    [
        {"content": b'{"file": "x"}', "headers": {"Content-Type": "application/json"}},
        {"content": b"", "headers": {"Content-Type": "multipart/form-data; boundary=x"}},
        {"content": b"garbage", "headers": {"Content-Type": "multipart/form-data"}},
        {"content": b"garbage", "headers": {"Content-Type": "multipart/form-data; boundary=x"}},
        {"data": {"file": "not a file"}},
    ],
    ids=["json", "empty-multipart", "no-boundary", "bad-multipart", "text-field"],
)
def test_wrong_bodies_and_content_types_are_4xx(client, kwargs):
    r = client.post("/predict", **kwargs)
    assert 400 <= r.status_code < 500, r.text
    assert set(r.json()) >= {"error", "detail"}


def test_extra_fields_are_ignored_and_several_files_refused(client, test_images):
    image = (test_images / "grace_hopper.bmp").read_bytes()
    r = client.post("/predict", files={"file": ("g.bmp", image)}, data={"note": "hello"})
    assert r.status_code == 200
    r = client.post("/predict", files=[("file", ("a.bmp", image)), ("file", ("b.bmp", image))])
    assert r.status_code == 422 and "one image" in r.json()["detail"]


def test_schemathesis_finds_no_server_error_and_no_schema_violation(service, tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{service.url}/openapi.json",
            "--checks",
            "not_a_server_error,response_schema_conformance,content_type_conformance,status_code_conformance",
            "--max-examples",
            "25",
            "--seed",
            "1",
            "--request-timeout",
            "30",
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "POST /predict" in result.stdout  # the run really exercised the upload endpoint


def test_client_file_names_never_become_paths(client, test_images, tmp_path):
    target = tmp_path / "written-by-a-client.jpg"
    name = "../" * 12 + str(target).lstrip("/")
    r = client.post("/predict", files={"file": (name, (test_images / "grace_hopper.bmp").read_bytes())})
    assert r.status_code == 200
    assert not target.exists()
