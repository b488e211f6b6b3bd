"""Graceful drain: SIGTERM in the middle of a steady load loses no request."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx

from harness.loadgen import start_service, wait_ready

DRAIN, TIMEOUT = 1.5, 8.0


def test_clients_sending_back_to_back_through_sigterm_get_every_request_answered(tiny_model_dir, test_images, tmp_path):
    """Six clients send one request after another before, during and after the drain: each request
    is answered — 200 before SIGTERM, 200 or 503 after, every answer after it with Connection:
    close — or refused once the port is closed; none is cut off on an open connection."""
    svc = start_service(
        tiny_model_dir,
        tmp_path / "service.log",
        MODEL_RUNTIME="onnx",
        DRAIN_SECONDS=str(DRAIN),
        SHUTDOWN_TIMEOUT=str(TIMEOUT),
    )
    wait_ready(svc)
    photo = (test_images / "face.jpg").read_bytes()
    answers: list[tuple[float, int, str]] = []  # (when, status, Connection header)
    refused: list[float] = []
    failures: list[str] = []
    ready_while_draining: list[int] = []
    sent: dict[str, float] = {}

    async def client(c: httpx.AsyncClient) -> None:
        deadline = time.monotonic() + 2.0 + TIMEOUT + 3  # bounded: the server is gone by then
        while time.monotonic() < deadline:
            try:
                r = await c.post("/predict", files={"file": ("face.jpg", photo)})
            except httpx.ConnectError:  # refused: the port is closed, the replica is gone
                refused.append(time.monotonic())
                return
            except httpx.HTTPError as exc:  # cut off on an open connection: a lost request
                failures.append(f"{time.monotonic() - sent.get('sigterm', 0):.3f} s after SIGTERM: {exc!r}")
                return
            answers.append((time.monotonic(), r.status_code, r.headers.get("connection", "")))
            if r.status_code == 503:
                assert r.json()["error"] == "shutting_down" and r.headers["Retry-After"] == "1"

    async def terminate(c: httpx.AsyncClient) -> None:
        await asyncio.sleep(2.0)
        sent["sigterm"] = time.monotonic()
        svc.process.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.2)
        ready_while_draining.append((await c.get("/ready")).status_code)

    async def run() -> None:
        async with httpx.AsyncClient(base_url=svc.url, timeout=30) as c:
            await asyncio.gather(*(client(c) for _ in range(6)), terminate(c))

    asyncio.run(run())
    try:
        code = svc.process.wait(TIMEOUT + 5)
    finally:
        svc.process.kill()
    exited = time.monotonic() - sent["sigterm"]
    assert not failures, failures
    before = [s for t, s, _ in answers if t < sent["sigterm"]]
    after = [(s, conn) for t, s, conn in answers if t > sent["sigterm"] + 0.05]  # answers sent after SIGTERM
    assert before and set(before) == {200}
    assert {s for s, _ in after} == {200, 503}  # accepted work finished, new work was turned away
    assert all(conn == "close" for _, conn in after), after
    assert len(refused) == 6 and min(refused) > sent["sigterm"] + DRAIN  # refused only once the port closed
    assert ready_while_draining == [503]
    assert code == 0 and DRAIN <= exited <= TIMEOUT, exited
