"""Overload, slow uploads, faults inside inference, the API key, CORS, logs and metrics."""

from __future__ import annotations

import asyncio
import io
import socket
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from harness.loadgen import failed_start, start_service, stop, wait_ready

KEY = "s3cret-key"


@pytest.fixture(scope="module")
def strict(tiny_model_dir, tmp_path_factory):
    """A service with one prediction slot, a 1.5 s upload timeout, an API key and one CORS origin."""
    log = tmp_path_factory.mktemp("strict") / "service.log"
    svc = start_service(
        tiny_model_dir,
        log,
        MODEL_RUNTIME="onnx",
        MAX_IN_FLIGHT="1",
        UPLOAD_TIMEOUT="1.5",
        API_KEY=KEY,
        CORS_ORIGINS='["http://example.org"]',
    )
    try:
        wait_ready(svc)
        yield svc, log
    finally:
        stop(svc)


def _big_photo(test_images: Path) -> bytes:
    """A 1920×1080 canvas with the test faces on it: slow enough to keep a slot busy."""
    canvas = Image.new("RGB", (1920, 1080), (120, 130, 140))
    canvas.paste(Image.open(test_images / "face.jpg"), (100, 100))
    canvas.paste(Image.open(test_images / "grace_hopper.bmp"), (1000, 300))
    buf = io.BytesIO()
    canvas.save(buf, format="PNG")
    return buf.getvalue()


def test_overload_gets_503_at_once_then_service_recovers(strict, test_images):
    svc, _ = strict
    photo = _big_photo(test_images)

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=svc.url, timeout=60, headers={"X-API-Key": KEY}) as c:
            return await asyncio.gather(*[c.post("/predict", files={"file": ("p.png", photo)}) for _ in range(12)])

    responses = asyncio.run(burst())
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 503}
    assert statuses.count(200) >= 1 and statuses.count(503) >= 1, statuses
    refused = next(r for r in responses if r.status_code == 503)
    assert refused.headers["Retry-After"] == "1" and refused.json()["error"] == "overloaded"
    metrics = httpx.get(svc.url + "/metrics", headers={"X-API-Key": KEY}).text
    assert f"dex_predictions_rejected_total {float(statuses.count(503))}" in metrics
    again = httpx.post(svc.url + "/predict", files={"file": ("p.png", photo)}, headers={"X-API-Key": KEY}, timeout=60)
    assert again.status_code == 200


def test_slow_upload_is_cut_off(strict):
    svc, _ = strict
    host, port = svc.url.removeprefix("http://").split(":")
    start = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nX-API-Key: " + KEY.encode() + b"\r\n"
            b"Content-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n"
        )
        answer = b""
        while b"\r\n\r\n" not in answer:
            sock.sendall(b"x")  # one byte every half second, far too slow
            time.sleep(0.5)
            try:
                sock.settimeout(0.01)
                answer += sock.recv(4096)
            except TimeoutError:
                pass
            assert time.monotonic() - start < 10, "the slow upload was not cut off"
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


def test_api_key_guards_everything_but_health_and_ready(strict):
    svc, _ = strict
    assert httpx.get(svc.url + "/health").status_code == 200
    assert httpx.get(svc.url + "/ready").status_code == 200
    for path in ("/model", "/metrics", "/openapi.json"):
        r = httpx.get(svc.url + path)
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        assert httpx.get(svc.url + path, headers={"X-API-Key": "wrong"}).status_code == 401
        assert httpx.get(svc.url + path, headers={"X-API-Key": KEY}).status_code == 200
    assert httpx.post(svc.url + "/predict", files={"file": ("a", b"x")}).status_code == 401


def test_cors_is_off_by_default_and_configurable(strict, client):
    preflight = {"Origin": "http://example.org", "Access-Control-Request-Method": "POST"}
    svc, _ = strict
    allowed = httpx.options(svc.url + "/predict", headers=preflight)
    assert allowed.headers.get("access-control-allow-origin") == "http://example.org"
    assert "access-control-allow-origin" not in client.options("/predict", headers=preflight).headers
    other = httpx.options(svc.url + "/predict", headers={**preflight, "Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in other.headers


def test_request_logs_are_structured_and_carry_no_image(strict, test_images):
    svc, log = strict
    r = httpx.post(
        svc.url + "/predict",
        files={"file": ("g.bmp", (test_images / "grace_hopper.bmp").read_bytes())},
        headers={"X-API-Key": KEY},
        timeout=60,
    )
    request_id = r.headers["X-Request-ID"]
    time.sleep(0.2)
    lines = [line for line in log.read_text().splitlines() if request_id in line]
    assert len(lines) == 1
    assert '"method": "POST"' in lines[0] and '"path": "/predict"' in lines[0] and '"status": 200' in lines[0]
    assert "duration_ms" in lines[0] and len(lines[0]) < 400


def test_metrics_in_prometheus_format(client, test_images):
    client.post("/predict", files={"file": ("g.bmp", (test_images / "grace_hopper.bmp").read_bytes())})
    text = client.get("/metrics").text
    for name in (
        'dex_requests_total{endpoint="/predict",status="200"}',
        'dex_request_duration_seconds_bucket{endpoint="/predict",le="0.5"}',
        "dex_faces_per_request_count",
        "dex_inference_duration_seconds_count",
        "dex_predictions_in_flight",
        "dex_predictions_rejected_total",
    ):
        assert name in text, name


@pytest.fixture
def single_batch_model(tiny_model_dir, tmp_path):
    """A real model whose ONNX graph only accepts batches of one: a request with several faces
    makes inference fail inside ONNX Runtime, a request with one face works."""
    import shutil

    import onnx

    model_dir = tmp_path / "single-batch"
    shutil.copytree(tiny_model_dir, model_dir)
    graph = onnx.load(str(model_dir / "model.onnx"))
    graph.graph.input[0].type.tensor_type.shape.dim[0].dim_value = 1
    onnx.save(graph, str(model_dir / "model.onnx"))
    return model_dir


def test_failure_inside_inference_is_a_json_500_and_the_next_request_works(single_batch_model, test_images, tmp_path):
    log = tmp_path / "service.log"
    svc = start_service(single_batch_model, log, MODEL_RUNTIME="onnx", MODEL_PRECISION="float")  # model.onnx
    try:
        wait_ready(svc)
        four = httpx.post(svc.url + "/predict", files={"file": ("f.jpg", (test_images / "face.jpg").read_bytes())})
        assert four.status_code == 500
        body = four.json()
        assert body["error"] == "internal_error" and body["request_id"] == four.headers["X-Request-ID"]
        assert "Traceback" not in four.text
        one = httpx.post(
            svc.url + "/predict", files={"file": ("g.bmp", (test_images / "grace_hopper.bmp").read_bytes())}
        )
        assert one.status_code == 200 and len(one.json()["faces"]) == 1
        time.sleep(0.2)
        text = log.read_text()
        assert body["request_id"] in text and "Traceback" in text  # logged server-side, with its traceback
    finally:
        stop(svc)


def test_ages_that_do_not_match_the_model_refuse_to_start(tiny_model_dir, tmp_path):
    import json
    import shutil

    bad = tmp_path / "mismatch"
    shutil.copytree(tiny_model_dir, bad)
    card = json.loads((bad / "model.json").read_text())
    (bad / "model.json").write_text(json.dumps({**card, "ages": list(range(50))}))
    code, log = failed_start(bad, tmp_path)
    assert code == 1 and "outputs 101 classes but model.json lists 50 ages" in log
    assert "Traceback" not in log
    np.testing.assert_equal(code, 1)
