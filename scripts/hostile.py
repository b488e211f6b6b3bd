"""Hostile inputs, built small, and what the real service does with them.

    python scripts/hostile.py [--runtime onnx|tensorflow] [--model-dir DIR]

starts the service with default settings on a loopback port and prints, for every class of
hostile input, the answer, the time to it and the memory it cost (README, Reliability). The
builders live in harness.hostile, shared with the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import threading
import time
from pathlib import Path

import httpx

from app.config import SHIPPED_MODEL
from harness.hostile import (
    abandon,
    address,
    exchange,
    header_flood,
    huge_header,
    mpo,
    png16,
    rle_bmp,
    scan_bomb,
    status_of,
    webp_rgba,
    worst_progressive,
)
from harness.loadgen import rss_mb, start_service, stop, wait_ready
from model_training.dataset import TEST_IMAGES

# ---- measurement -----------------------------------------------------------------------------


class Peak:
    """The process's peak resident memory over a block (VmHWM, reset through /proc/PID/clear_refs)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    def __enter__(self) -> Peak:
        self.before = rss_mb(self.pid)
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")
        return self

    def __exit__(self, *exc) -> None:
        with open(f"/proc/{self.pid}/status") as fh:
            self.peak = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM")) / 1024
        time.sleep(1.0)
        self.after = rss_mb(self.pid)

    def row(self) -> str:
        return f"+{self.peak - self.before:.0f} MB peak, +{self.after - self.before:.0f} MB after"


def _post_all(url: str, files: list[tuple[str, bytes]]) -> list[httpx.Response]:
    async def go() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            return await asyncio.gather(*(client.post("/predict", files={"file": f}) for f in files))

    return asyncio.run(go())


def _answer(r: httpx.Response) -> str:
    body = r.json()
    return f"{r.status_code} {body['error']}" if r.status_code >= 400 else f"200, {len(body['faces'])} faces"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runtime", default="tensorflow", choices=["tensorflow", "onnx"])
    parser.add_argument("--model-dir", type=Path, default=SHIPPED_MODEL)
    args = parser.parse_args()
    log = Path("/tmp/dex-age-hostile.log")
    service = start_service(args.model_dir, log, MODEL_RUNTIME=args.runtime)
    try:
        wait_ready(service)
        url, pid = service.url, service.process.pid
        face = (TEST_IMAGES / "face.jpg").read_bytes()
        _post_all(url, [("face.jpg", face)])  # warm
        print(f"service {args.runtime}, resident {rss_mb(pid):.0f} MB; one row per case\n")

        def files(name: str, data: bytes, times: int = 1) -> None:
            with Peak(pid) as peak:
                start = time.monotonic()
                answers = _post_all(url, [(name, data)] * times)
                seconds = time.monotonic() - start
            kinds = sorted({_answer(r) for r in answers})
            print(f"| {name} ×{times} ({len(data):,} B) | {', '.join(kinds)} | {seconds:.2f} s | {peak.row()} |")

        files("scan-bomb.jpg", scan_bomb())
        files("worst-progressive.jpg", worst_progressive())
        files("rle.bmp", rle_bmp())
        files("png16.png", png16(), times=4)
        files("rgba.webp", webp_rgba(), times=4)
        files("face-mpo.jpg", mpo(face))

        for name, request in [("200,000 header lines", header_flood()), ("one 200 MB header", huge_header())]:
            with Peak(pid) as peak:
                answer, seconds = exchange(url, request)
            print(f"| {name} | {status_of(answer)} | {seconds:.2f} s | {peak.row()} |")
        for name, request in [
            ("nothing sent", b""),
            ("half a header block", b"GET /health HTTP/1.1\r\nHost: x\r\n"),
        ]:
            answer, seconds = exchange(url, request)
            print(f"| {name} | {status_of(answer)} | closed after {seconds:.1f} s | |")
        answer, seconds = _trickle(url)
        print(f"| a header line every 10 s | {status_of(answer)} | closed after {seconds:.1f} s | |")
        for name, request in [
            ("bad Content-Length", b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n"),
            ("unknown method", b"BREW /predict HTTP/1.1\r\nHost: x\r\n\r\n"),
            ("64 KB URL", b"GET /" + b"a" * 65536 + b" HTTP/1.1\r\nHost: x\r\n\r\n"),
            (
                "WebSocket upgrade",
                b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            ),
        ]:
            answer, _ = exchange(url, request.replace(b"Host: x\r\n", b"Host: x\r\nConnection: close\r\n", 1))
            body = answer.partition(b"\r\n\r\n")[2][:90].decode(errors="replace")
            print(f"| {name} | {status_of(answer)}: {body} |")

        bomb = worst_progressive()
        hangups = [threading.Thread(target=abandon, args=(url, bomb, 0.5)) for _ in range(2)]
        for thread in hangups:
            thread.start()
        time.sleep(0.3)
        start = time.monotonic()
        normal = _post_all(url, [("face.jpg", face)])[0]
        seconds = time.monotonic() - start
        print(f"| face.jpg while two abandoned bombs are in flight | {_answer(normal)} | {seconds:.2f} s | |")
        for thread in hangups:
            thread.join()
        metrics = httpx.get(url + "/metrics").text
        abandoned = next(line for line in metrics.splitlines() if line.startswith("dex_predictions_abandoned_total"))
        print(f"\n{abandoned}; resident {rss_mb(pid):.0f} MB at the end")
    finally:
        stop(service)


def _trickle(url: str) -> tuple[bytes, float]:
    """A header line every 10 s, until the server answers or closes."""
    start = time.monotonic()
    with socket.create_connection(address(url)) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        sock.settimeout(10)
        while time.monotonic() - start < 120:
            try:
                answer = sock.recv(65536)
                return answer, time.monotonic() - start
            except TimeoutError:
                sock.sendall(b"X-A: b\r\n")
            except ConnectionResetError:
                break
    return b"", time.monotonic() - start


if __name__ == "__main__":
    main()
