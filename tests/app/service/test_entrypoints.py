"""The ways Python people start a FastAPI app: `uvicorn app.service.main:app` (one worker or several),
`fastapi run app/service/main.py` and `dex-age serve` all serve as `python -m app` does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from harness.loadgen import start_service, stop, wait_ready

BIN = Path(sys.executable).parent
UVICORN = [sys.executable, "-m", "uvicorn", "app.service.main:app", "--host", "127.0.0.1", "--port", "{port}"]
COMMANDS = {
    "uvicorn": UVICORN,
    "uvicorn-guarded": [*UVICORN, "--http", "app.service.server:GuardedH11Protocol", "--ws", "none"],
    "fastapi-run": [str(BIN / "fastapi"), "run", "app/service/main.py", "--host", "127.0.0.1", "--port", "{port}"],
    "dex-age-serve": [str(BIN / "dex-age"), "serve", "--port", "{port}"],
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_entry_point_serves(name, tiny_model_dir, test_images, tmp_path):
    svc = start_service(tiny_model_dir, tmp_path / "service.log", COMMANDS[name], MODEL_RUNTIME="onnx")
    try:
        wait_ready(svc)
        face = (test_images / "face.jpg").read_bytes()
        r = httpx.post(svc.url + "/predict", files={"file": ("face.jpg", face)}, timeout=60)
        assert r.status_code == 200 and len(r.json()["faces"]) == 4
        assert httpx.get(svc.url + "/model").json()["runtime"]["runtime"] == "onnx"  # settings from the environment
    finally:
        stop(svc)


def _count(metrics: str, endpoint: str) -> float:
    pattern = rf'dex_requests_total\{{endpoint="{re.escape(endpoint)}",status="200"\}} (\S+)'
    return sum(float(m) for m in re.findall(pattern, metrics))


def test_several_workers_share_their_metrics(tiny_model_dir, tmp_path):
    command = [*UVICORN, "--workers", "2"]
    svc = start_service(tiny_model_dir, tmp_path / "service.log", command, MODEL_RUNTIME="onnx")
    try:
        wait_ready(svc)
        for _ in range(10):  # make sure both workers are up and serving
            wait_ready(svc)
        for _ in range(20):
            assert httpx.get(svc.url + "/health", headers={"Connection": "close"}).status_code == 200
        counts = {_count(httpx.get(svc.url + "/metrics", headers={"Connection": "close"}).text, "/health")}
        counts |= {_count(httpx.get(svc.url + "/metrics", headers={"Connection": "close"}).text, "/health")}
        assert counts == {20.0}, counts  # whichever worker answers, it counts both
        log = (tmp_path / "service.log").read_text()
        assert len(set(re.findall(r"Started server process \[(\d+)\]", log))) == 2
        threads = httpx.get(svc.url + "/model").json()["runtime"]["compute_threads"]
        assert threads == max(1, len(os.sched_getaffinity(0)) // 2)  # the cores shared between the workers
    finally:
        stop(svc)


@pytest.mark.parametrize(
    "workers, codes",
    [([], {3}), (["--workers", "2"], {0, 3})],  # uvicorn's supervisor stops with 0 once a worker fails to start
    ids=["one-worker", "two-workers"],
)
def test_uvicorn_exits_with_one_clear_line_on_a_bad_model_dir(workers, codes, tmp_path):
    missing = tmp_path / "no-such-model"
    svc = start_service(missing, tmp_path / "service.log", [*UVICORN, *workers], MODEL_RUNTIME="onnx")
    try:
        code = svc.process.wait(120)
    except subprocess.TimeoutExpired:
        svc.process.kill()
        raise
    log = (tmp_path / "service.log").read_text()
    assert code in codes
    problems = [line for line in log.splitlines() if "cannot serve" in line]
    assert problems and all(str(missing) in line and "does not exist" in line for line in problems)
    assert "Traceback" not in log
