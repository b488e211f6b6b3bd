"""Graceful drain: SIGTERM in the middle of a steady load loses no request."""

from __future__ import annotations

import asyncio
import signal
import time

import httpx

from scripts.loadgen import start_service, wait_ready

DRAIN, TIMEOUT = 1.5, 8.0


def test_sigterm_mid_load_answers_every_request_then_exits_in_time(tiny_model_dir, test_images, tmp_path):
    svc = start_service(
        tiny_model_dir,
        tmp_path / "service.log",
        MODEL_RUNTIME="onnx",
        DRAIN_SECONDS=str(DRAIN),
        SHUTDOWN_TIMEOUT=str(TIMEOUT),
    )
    wait_ready(svc)
    photo = (test_images / "face.jpg").read_bytes()
    answers: list[tuple[float, int]] = []
    failures: list[str] = []
    ready_while_draining: list[int] = []
    sent: dict[str, float] = {}

    async def client(c: httpx.AsyncClient) -> None:
        while True:  # a steady load, until this replica says it is going
            try:
                r = await c.post("/predict", files={"file": ("face.jpg", photo)})
            except httpx.HTTPError as exc:
                failures.append(repr(exc))
                return
            answers.append((time.monotonic(), r.status_code))
            if r.status_code == 503:
                assert r.json()["error"] == "shutting_down" and r.headers["Retry-After"] == "1"
                return

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
    statuses = [status for _, status in answers]
    assert not failures, failures  # no reset or refused connection
    assert set(statuses) == {200, 503}, statuses
    assert any(t > sent["sigterm"] and s == 200 for t, s in answers)  # accepted work finished after SIGTERM
    assert ready_while_draining == [503]
    assert code == 0 and DRAIN <= exited <= TIMEOUT, exited
