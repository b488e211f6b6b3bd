"""Hostile inputs, built small: files that cost a decoder far more than their size, requests
that never end, and the raw-socket helpers to send them. The tests (tests/app/test_hostile.py)
and the measurement (scripts/hostile.py) build them here."""

from __future__ import annotations

import io
import socket
import struct
import time
import zlib

from PIL import Image

from app.imaging import MAX_JPEG_SCANS

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
