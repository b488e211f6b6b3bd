"""Files per second through `dex-age predict` (in process) and through the HTTP service.

    python scripts/folder_throughput.py [--chips 1000] [--photos 200] [--runtime onnx] [--clients 4]

Two folders: UTKFace test chips (200×200 aligned faces), and photo-like composites (1600×1200
JPEGs holding one to three test faces of 90 to 400 px on a blurred background; this project holds
no folder of real photos). Each goes once through the command (wall time, model load included)
and once through the service on a loopback port (`clients` concurrent uploads; started and warm
before the clock starts).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from app.config import SHIPPED_MODEL
from harness.loadgen import start_service, stop, wait_ready
from harness.photos import make_folders
from model_training.dataset import SHARED_DATA

DATA = SHARED_DATA


def through_command(folder: Path, runtime: str) -> float:
    start = time.monotonic()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "dex-age"), "predict", str(folder), "--runtime", runtime],
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.monotonic() - start
    assert done.returncode == 0, done.stderr
    return seconds


def through_service(url: str, folder: Path, clients: int) -> float:
    files = sorted(folder.iterdir())

    async def go() -> None:
        queue = list(files)

        async def client(c: httpx.AsyncClient) -> None:
            while queue:
                path = queue.pop()
                r = await c.post("/predict", files={"file": (path.name, path.read_bytes())})
                assert r.status_code == 200, r.text

        async with httpx.AsyncClient(base_url=url, timeout=120) as c:
            await asyncio.gather(*(client(c) for _ in range(clients)))

    start = time.monotonic()
    asyncio.run(go())
    return time.monotonic() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chips", type=int, default=1000)
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--runtime", default="onnx", choices=["onnx", "tensorflow"])
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folders = make_folders(Path(tmp), args.chips, args.photos)
        rows = {folder: [len(list(folder.iterdir())), through_command(folder, args.runtime)] for folder in folders}
        service = start_service(SHIPPED_MODEL, Path(tmp) / "service.log", MODEL_RUNTIME=args.runtime)
        try:
            wait_ready(service)
            through_service(service.url, folders[0], args.clients)  # warm
            for folder in folders:
                rows[folder].append(through_service(service.url, folder, args.clients))
        finally:
            stop(service)
    print(f"runtime {args.runtime}, {os.cpu_count()} cores; files per second (wall time)\n")
    print(f"| folder | files | dex-age predict | HTTP service, {args.clients} clients |")
    print("|---|---:|---:|---:|")
    for folder, (count, command, http) in rows.items():
        in_process, served = f"{count / command:.1f} ({command:.1f} s)", f"{count / http:.1f} ({http:.1f} s)"
        print(f"| {folder.name} | {count} | {in_process} | {served} |")


if __name__ == "__main__":
    main()
