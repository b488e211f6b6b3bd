"""Hostile inputs, built small, and what the real service does with them.

    python scripts/hostile.py [--runtime onnx|tensorflow] [--model-dir DIR]

starts the service with default settings on a loopback port and prints, for every class of
hostile input, the answer, the time to it and the memory it cost (README, Reliability). The
builders are shared with the tests (tests/app/test_hostile.py).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import socket
import struct
import sys
import threading
import time
import zlib
from pathlib import Path

import httpx
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from app.imaging import MAX_JPEG_SCANS  # noqa: E402
from scripts.loadgen import rss_mb, start_service, stop, wait_ready  # noqa: E402

SIDE = 6244  # 39 MP: just under the default MAX_IMAGE_PIXELS
EMPTY_AC_SCAN = bytes.fromhex("ffda0008010100013f10") + b"\x1f"  # one component, AC refinement, no data


# ---- files -----------------------------------------------------------------------------------


def _encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _with_scans(jpeg: bytes, scans: int) -> bytes:
    """The JPEG with `scans` empty scans inserted before its end: each one a pass over every block."""
    assert jpeg.endswith(b"\xff\xd9")
    return jpeg[:-2] + EMPTY_AC_SCAN * scans + b"\xff\xd9"


def scan_bomb(side: int = SIDE, scans: int = 5000) -> bytes:
    """A progressive JPEG declaring side×side pixels whose body is thousands of empty scans (~55 KB)."""
    header = bytearray(_encode(Image.new("L", (16, 16), 128), "JPEG", progressive=True))
    at = header.index(b"\xff\xc2")
    header[at + 5 : at + 9] = struct.pack(">HH", side, side)
    return _with_scans(bytes(header), scans)


def worst_progressive(side: int = SIDE) -> bytes:
    """The costliest JPEG the rules accept: side×side real pixels, as many scans as allowed."""
    jpeg = _encode(Image.new("L", (side, side), 128), "JPEG", progressive=True, quality=95)
    own = jpeg.count(b"\xff\xda")  # a grey picture: no 0xFF 0xDA in its entropy-coded data
    return _with_scans(jpeg, MAX_JPEG_SCANS - own)


def rle_bmp(width: int = 39_000_000) -> bytes:
    """An RLE8 BMP of width×1 pixels in 64 bytes whose end-of-line code Pillow pads a byte at a time."""
    palette = b"\x00\x00\x00\x00\xff\xff\xff\x00"
    rle = b"\x01\x00" + b"\x00\x00" + b"\x00\x01"  # one pixel, end of line, end of bitmap
    offset = 14 + 40 + len(palette)
    info = struct.pack("<IiiHHIIiiII", 40, width, 1, 1, 8, 1, len(rle), 2835, 2835, 2, 0)
    return b"BM" + struct.pack("<IHHI", offset + len(rle), 0, 0, offset) + info + palette + rle


def png16(side: int = SIDE, rows: int | None = None) -> bytes:
    """A black 16-bit greyscale PNG of side×side pixels (~76 KB at 39 MP); with `rows`, only that
    many rows of data follow the header (a file far too small for the pixels it declares)."""
    row = b"\x00" + b"\x00\x00" * side
    packer = zlib.compressobj(9)
    body = b"".join(packer.compress(row) for _ in range(side if rows is None else rows)) + packer.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 16, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", body) + chunk(b"IEND", b"")


def webp_rgba(side: int = SIDE) -> bytes:
    """A half-transparent lossless WebP of side×side pixels (38 bytes)."""
    return _encode(Image.new("RGBA", (side, side), (200, 100, 50, 128)), "WEBP", lossless=True, quality=0, method=0)


def mpo(jpeg: bytes) -> bytes:
    """The JPEG as a phone writes it: a multi-picture (MPF) index and a second, smaller picture."""
    image = Image.open(io.BytesIO(jpeg))
    return _encode(image, "MPO", save_all=True, append_images=[image.resize((image.width // 4, image.height // 4))])


def without_mpf(phone: bytes) -> bytes:
    """The same primary picture as a plain JPEG: its multi-picture index and later pictures cut off."""
    entries = Image.open(io.BytesIO(phone)).mpinfo[0xB002]
    first = phone[: entries[0]["Size"]]
    at = first.index(b"\xff\xe2")  # APP2, which holds the index ("MPF\0")
    assert first[at + 4 : at + 8] == b"MPF\x00"
    return first[:at] + first[at + 2 + int.from_bytes(first[at + 2 : at + 4], "big") :]


# ---- raw HTTP --------------------------------------------------------------------------------


def address(url: str) -> tuple[str, int]:
    host, port = url.removeprefix("http://").split(":")
    return host, int(port)


def exchange(url: str, request: bytes, timeout: float = 60) -> tuple[bytes, float]:
    """Send raw bytes (as far as the server reads them), return what it answers and when it closed."""
    start = time.monotonic()
    with socket.create_connection(address(url), timeout=timeout) as sock:
        try:
            sock.sendall(request)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server stopped reading: its answer is what counts
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except (ConnectionResetError, TimeoutError):
            pass
    return answer, time.monotonic() - start


def header_flood(lines: int = 200_000) -> bytes:
    return b"GET /health HTTP/1.1\r\nHost: x\r\n" + b"X-A: b\r\n" * lines + b"\r\n"


def huge_header(size: int = 200 * 1024 * 1024) -> bytes:
    return b"GET /health HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * size + b"\r\n\r\n"


def status_of(answer: bytes) -> str:
    first = answer.split(b"\r\n", 1)[0].decode(errors="replace")
    return first.removeprefix("HTTP/1.1 ") or "closed, nothing sent"


def abandon(url: str, data: bytes, after: float) -> None:
    """Upload `data` to /predict and hang up `after` seconds later, unanswered."""
    body = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n' + data + b"\r\n--b--\r\n"
    head = (
        "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection(address(url)) as sock:
        sock.sendall(head.encode() + body)
        time.sleep(after)


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
    parser.add_argument("--model-dir", type=Path, default=REPO / "models" / "dex-mobilenet_v2")
    args = parser.parse_args()
    log = Path("/tmp/dex-age-hostile.log")
    service = start_service(args.model_dir, log, MODEL_RUNTIME=args.runtime)
    try:
        wait_ready(service)
        url, pid = service.url, service.process.pid
        face = (REPO.parent / "shared" / "data" / "test-images" / "face.jpg").read_bytes()
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
