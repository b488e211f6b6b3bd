"""Cheap to send must be cheap to serve: decode bombs, header floods, stalled and abandoned
connections, malformed HTTP, phone JPEGs — against the real service. The hostile files are built
by scripts/hostile.py, which also measures their cost (README, Reliability)."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import threading
import time

import httpx
import pytest

from harness import hostile
from harness.loadgen import REPO, rss_mb, start_service, stop, wait_ready

HEADER_TIMEOUT = 1.5


def _post(client: httpx.Client, name: str, data: bytes) -> httpx.Response:
    return client.post("/predict", files={"file": (name, data)})


def _error(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/json", response.text[:200]
    return response.json()["error"]


def _json_answer(answer: bytes) -> tuple[int, dict]:
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"content-type: application/json" in head.lower(), head
    return int(head.split()[1]), json.loads(body)


# ---- decode budget ----------------------------------------------------------------------------


def test_a_jpeg_of_thousands_of_empty_scans_is_refused(client):
    r = _post(client, "bomb.jpg", hostile.scan_bomb())
    assert r.status_code == 400 and _error(r) == "too_many_scans"


def test_a_file_far_too_small_for_its_pixels_is_refused(client):
    for name, data in [("header-only.jpg", hostile.scan_bomb(scans=0)), ("short.png", hostile.png16(rows=8))]:
        r = _post(client, name, data)
        assert r.status_code == 400 and _error(r) == "implausible_image", name


def test_run_length_encoded_bmp_is_refused(client):
    r = _post(client, "rle.bmp", hostile.rle_bmp())
    assert r.status_code == 415 and _error(r) == "unsupported_compression"


def test_the_costliest_accepted_jpeg_is_served(client):
    assert _post(client, "worst.jpg", hostile.worst_progressive(side=2000)).status_code == 200


def test_memory_heavy_images_are_served_and_memory_returns(client, service):
    heavy = [("png16.png", hostile.png16()), ("rgba.webp", hostile.webp_rgba())]
    for name, data in heavy:  # warm both paths once
        assert _post(client, name, data).status_code == 200
    before = rss_mb(service.process.pid)

    async def four_at_once(name: str, data: bytes) -> list[int]:
        async with httpx.AsyncClient(base_url=service.url, timeout=120) as c:
            answers = await asyncio.gather(*(c.post("/predict", files={"file": (name, data)}) for _ in range(4)))
        return [a.status_code for a in answers]

    for name, data in heavy:
        assert asyncio.run(four_at_once(name, data)) == [200] * 4
    growth = rss_mb(service.process.pid) - before
    assert growth <= 150, f"{growth:.0f} MB still held after the 39 MP images"


def test_a_phone_jpeg_with_a_multi_picture_index_serves_its_primary_picture(client, test_images):
    phone = hostile.mpo((test_images / "face.jpg").read_bytes())
    plain = hostile.without_mpf(phone)  # the same picture without the index
    expected, got = _post(client, "face.jpg", plain).json(), _post(client, "phone.jpg", phone).json()
    assert got["image"] == expected["image"]
    assert [f["box"] for f in got["faces"]] == [f["box"] for f in expected["faces"]] and len(got["faces"]) == 4


# ---- HTTP limits ------------------------------------------------------------------------------


def test_a_header_flood_is_refused_without_memory(service):
    before = rss_mb(service.process.pid)
    answer, _ = hostile.exchange(service.url, hostile.header_flood())
    status, body = _json_answer(answer)
    assert status == 431 and body["error"] == "headers_too_large"
    assert rss_mb(service.process.pid) - before <= 50


def test_too_many_header_lines_get_431(client):
    r = client.get("/health", headers={f"x-h{i}": "1" for i in range(150)})
    assert r.status_code == 431 and _error(r) == "too_many_headers"


def test_a_64_kb_url_sent_in_one_piece_gets_431(service):
    answer, _ = hostile.exchange(service.url, b"GET /" + b"a" * 65536 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    status, body = _json_answer(answer)
    assert status == 431 and body["error"] == "headers_too_large"


@pytest.mark.parametrize(
    "request_, status",
    [
        (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", 400),
        (b"BREW /predict HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 405),
        (
            b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            404,
        ),
    ],
    ids=["bad-content-length", "unknown-method", "websocket-upgrade"],
)
def test_malformed_http_gets_a_json_answer(service, request_, status):
    got, body = _json_answer(hostile.exchange(service.url, request_, timeout=10)[0])
    assert got == status and set(body) == {"error", "detail"}


@pytest.fixture(scope="module")
def guarded(tiny_model_dir, tmp_path_factory):
    """Short header and keep-alive timeouts, four connections at most, one compute thread."""
    svc = start_service(
        tiny_model_dir,
        tmp_path_factory.mktemp("guarded") / "service.log",
        MODEL_RUNTIME="onnx",
        HEADER_TIMEOUT=str(HEADER_TIMEOUT),
        KEEP_ALIVE_TIMEOUT="1",
        MAX_CONNECTIONS="4",
        COMPUTE_THREADS="1",
    )
    try:
        wait_ready(svc)
        yield svc
    finally:
        stop(svc)


def test_a_connection_that_sends_nothing_is_closed(guarded):
    answer, seconds = hostile.exchange(guarded.url, b"", timeout=30)
    assert answer == b"" and seconds < HEADER_TIMEOUT + 5


def test_unfinished_headers_get_408_and_the_connection_closes(guarded):
    answer, seconds = hostile.exchange(guarded.url, b"GET /health HTTP/1.1\r\nHost: x\r\n", timeout=30)
    status, body = _json_answer(answer)
    assert status == 408 and body["error"] == "header_timeout" and seconds < HEADER_TIMEOUT + 5


def test_an_idle_keep_alive_connection_is_closed(guarded):
    with socket.create_connection(hostile.address(guarded.url), timeout=30) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while not first.endswith(b'{"status":"ok"}'):
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200")
        start = time.monotonic()
        assert sock.recv(65536) == b""  # closed by the server
        assert time.monotonic() - start < 5


def test_connections_past_the_cap_get_503(guarded):
    address = hostile.address(guarded.url)
    held = [socket.create_connection(address) for _ in range(4)]
    try:
        time.sleep(0.3)
        status, body = _json_answer(hostile.exchange(guarded.url, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")[0])
        assert status == 503 and body["error"] == "too_many_connections"
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.3)
    assert httpx.get(guarded.url + "/health").status_code == 200


def test_abandoned_predictions_are_dropped_and_a_normal_request_is_served(guarded, test_images):
    bomb = hostile.worst_progressive()
    hangups = [threading.Thread(target=hostile.abandon, args=(guarded.url, bomb, 0.5)) for _ in range(2)]
    for thread in hangups:
        thread.start()
    time.sleep(0.3)
    start = time.monotonic()
    r = httpx.post(guarded.url + "/predict", files={"file": ("face.jpg", (test_images / "face.jpg").read_bytes())})
    seconds = time.monotonic() - start
    for thread in hangups:
        thread.join()
    assert r.status_code == 200 and len(r.json()["faces"]) == 4
    assert seconds < 5, f"a normal request waited {seconds:.1f} s behind abandoned ones"
    time.sleep(1)
    metrics = httpx.get(guarded.url + "/metrics").text
    assert "dex_predictions_abandoned_total 2.0" in metrics
    assert 'dex_requests_total{endpoint="/predict",status="499"} 2.0' in metrics


# ---- no internals -----------------------------------------------------------------------------


def test_error_details_are_sentences_without_exception_names(client, test_images):
    face = (test_images / "face.jpg").read_bytes()
    for data in (face[:2000], face[:300] + b"\x00" * 500, b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, b"RIFF0000WEBPVP8 "):
        r = _post(client, "broken", data)
        assert r.status_code == 400
        assert not re.search(r"Error|Exception|\w+\(", r.json()["detail"]), r.json()["detail"]


def test_the_model_card_shows_no_host_paths(client, tiny_model_dir):
    card = client.get("/model").text
    assert str(REPO) not in card and str(tiny_model_dir.parent) not in card
    assert client.get("/model").json()["runtime"]["model_dir"] == tiny_model_dir.name
