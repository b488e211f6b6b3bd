"""Uploaded bytes → an 8-bit RGB array, with the checks that keep hostile files harmless.

Every file is judged from its header before a pixel is decoded: the pixel limit, then rules that
bound what decoding can cost (README, Reliability): a file far too small to hold the pixels it
declares, a JPEG with more scans than any encoder writes, BMP compressions that Pillow decodes in
Python. What passes is decoded once and converted to RGB in strips, so that the memory held is the
decoded image plus 3 bytes a pixel.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import io
import re
import warnings

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError


class ImageError(ValueError):
    """A file that cannot be read as an image or a video: `error` is a stable code (the service's
    JSON error and the CLI's error column), `detail` a sentence saying why."""

    def __init__(self, error: str, detail: str) -> None:
        super().__init__(detail)
        self.error, self.detail = error, detail


FORMATS = {"JPEG", "PNG", "WEBP", "BMP", "MPO"}  # MPO: a JPEG with a multi-picture index (phones)
Image.MAX_IMAGE_PIXELS = None  # the service applies its own limit before decoding (see decode)

MAX_JPEG_SCANS = 100  # libjpeg writes 10 for a progressive colour JPEG; each scan costs a pass
MAX_JPEG_SEGMENTS = 2_000  # marker segments walked while counting scans (real files have tens)
MAX_DEFLATE_RATIO = 1032  # deflate's ceiling: a PNG cannot hold more raw bytes than this per byte
STRIP_ROWS = 256  # rows converted at a time

# a marker: 0xFF then a byte that is not stuffing (00), a restart (D0-D7) or fill (FF)
_JPEG_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")
_HUFFMAN_FRAMES = {0xC0, 0xC1, 0xC2}  # baseline, extended, progressive; each block costs ≥ 1 bit
_STANDALONE = {0x01, 0xD8}  # TEM and SOI carry no length


_LIBC_PATH = ctypes.util.find_library("c")
_LIBC = ctypes.CDLL(_LIBC_PATH) if _LIBC_PATH else None


def release_memory() -> None:
    """Return freed heap pages to the system (glibc keeps them otherwise: tens of MB after a large
    image). Costs about 5 ms after a 39 MP image and nothing when there is nothing to return."""
    if _LIBC is not None and hasattr(_LIBC, "malloc_trim"):
        _LIBC.malloc_trim(0)


def decode(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode an upload as RGB uint8, EXIF orientation applied."""
    if not data:
        raise ImageError("empty_file", "the uploaded file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ImageError("not_an_image", "the file is not an image this service can read") from None
    except Exception:  # noqa: BLE001 - Pillow raises many kinds for hostile headers
        raise ImageError("corrupt_image", "the image header cannot be read") from None
    if image.format not in FORMATS:
        raise ImageError(
            "unsupported_image_type", f"{image.format} images are not supported; send JPEG, PNG, WebP or BMP"
        )
    width, height = image.size
    if width < 1 or height < 1:
        raise ImageError("corrupt_image", "the image has no pixels")
    if width * height > max_pixels:
        raise ImageError(
            "image_too_large", f"the image has {width}×{height} pixels; the limit is {max_pixels:,} pixels"
        )
    check_cost(image, data)
    try:
        orientation = image.getexif().get(0x0112, 1)
        if image.format == "WEBP":
            rgb = _decode_webp(data)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                image.load()
            rgb = _to_rgb8(image)
    except Exception:  # noqa: BLE001 - truncated or corrupt data surfaces here
        raise ImageError("corrupt_image", "the image data is corrupt or truncated") from None
    finally:
        image.close()  # frees the decoded pixels now, not when the garbage collector runs
    return _orient(rgb, orientation)


def check_cost(image: Image.Image, data: bytes) -> None:
    """Refuse, from the header, files whose decoding would cost far more than their size suggests."""
    width, height = image.size
    if image.format == "BMP" and image.info.get("compression") in (1, 2):  # RLE8, RLE4
        raise ImageError(
            "unsupported_compression",
            "run-length encoded (RLE) BMP files are not supported; send an uncompressed BMP, PNG or JPEG",
        )
    if image.format == "PNG" and len(data) * MAX_DEFLATE_RATIO < png_raw_bytes(data):
        raise _implausible(len(data), width, height)
    if image.format in ("JPEG", "MPO"):
        frame, scans = jpeg_structure(data)
        if scans > MAX_JPEG_SCANS:
            raise ImageError(
                "too_many_scans",
                f"the JPEG has more than {MAX_JPEG_SCANS} scans or {MAX_JPEG_SEGMENTS:,} segments; "
                "no camera or encoder writes that many",
            )
        if frame in _HUFFMAN_FRAMES:
            if len(data) * 8 < jpeg_blocks(image):  # a Huffman-coded block takes at least one bit
                raise _implausible(len(data), width, height)


def png_raw_bytes(data: bytes) -> int:
    """The bytes a PNG's pixels take before compression (a lower bound: interlacing adds some)."""
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    depth, colour = data[24], data[25]
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 1)
    return height * (1 + -(-width * depth * channels // 8))


def _implausible(size: int, width: int, height: int) -> ImageError:
    return ImageError(
        "implausible_image",
        f"a file of {size:,} bytes cannot hold {width}×{height} pixels in this format: it is truncated or crafted",
    )


def jpeg_blocks(image: Image.Image) -> int:
    """The 8×8 blocks of all components, from the frame header Pillow has parsed (chroma subsampled)."""
    width, height = image.size
    factors = getattr(image, "layer", None) or [("", 1, 1, 0)] * getattr(image, "layers", 1)
    hmax, vmax = max(f[1] for f in factors), max(f[2] for f in factors)
    return sum(-(-width * h // (8 * hmax)) * -(-height * v // (8 * vmax)) for _, h, v, _ in factors)


def jpeg_structure(data: bytes) -> tuple[int | None, int]:
    """The first picture's frame type (SOFn marker) and its number of scans.

    Walks the marker segments and jumps over entropy-coded data with one regex search (C speed);
    stops at the first picture's end (an MPO's further pictures are not decoded) or once the
    count is past what `check_cost` accepts, so hostile files cost little here too.
    """
    pos, frame, scans = 2, None, 0
    for _ in range(MAX_JPEG_SEGMENTS):
        found = _JPEG_MARKER.search(data, pos)
        if found is None:
            return frame, scans
        marker, pos = data[found.end() - 1], found.end()
        if marker == 0xD9:  # end of the picture
            return frame, scans
        if marker in _STANDALONE:
            continue
        if marker == 0xDA:
            scans += 1
            if scans > MAX_JPEG_SCANS:
                break
        elif 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC) and frame is None:
            frame = marker
        pos += int.from_bytes(data[pos : pos + 2], "big")
    return frame, MAX_JPEG_SCANS + 1


def _to_rgb8(image: Image.Image) -> np.ndarray:
    """RGB uint8, converted a strip at a time: no whole-image intermediate beyond the result."""
    width, height = image.size
    mode = image.mode
    if mode in {"I", "I;16", "I;16B", "I;16L", "F"}:  # 16-bit or float grayscale: scaled, not clipped
        scale = 256 if image.getextrema()[1] > 255 else 1
        gray = np.empty((height, width), np.uint8)
        for y, strip in _strips(image):
            gray[y : y + strip.height] = np.clip(np.asarray(strip) // scale, 0, 255)
        image.close()  # the 16-bit pixels go before the RGB ones come
        return _gray_to_rgb(gray)
    out = np.empty((height, width, 3), np.uint8)
    transparent = mode in {"RGBA", "LA", "PA"} or (mode == "P" and "transparency" in image.info)
    for y, strip in _strips(image):
        if transparent:
            strip = _over_white(strip.convert("RGBA"))
        out[y : y + strip.height] = np.asarray(strip if strip.mode == "RGB" else strip.convert("RGB"))
    return out


def _decode_webp(data: bytes) -> np.ndarray:
    """WebP through OpenCV's libwebp: into one array, where Pillow's decoder holds three copies."""
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION)
    if pixels is None:
        raise ValueError("undecodable WebP")
    if pixels.ndim == 2:
        return _gray_to_rgb(pixels)
    if pixels.shape[2] == 3:
        return cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB, dst=pixels)  # in place
    height, width = pixels.shape[:2]
    out = np.empty((height, width, 3), np.uint8)
    for y in range(0, height, STRIP_ROWS):
        bgra = pixels[y : y + STRIP_ROWS]
        out[y : y + len(bgra)] = np.asarray(_over_white(Image.fromarray(cv2.cvtColor(bgra, cv2.COLOR_BGRA2RGBA))))
    return out


def _strips(image: Image.Image):
    for y in range(0, image.height, STRIP_ROWS):
        yield y, image.crop((0, y, image.width, min(y + STRIP_ROWS, image.height)))


def _over_white(rgba: Image.Image) -> Image.Image:
    white = Image.new("RGB", rgba.size, (255, 255, 255))
    white.paste(rgba, mask=rgba.getchannel("A"))
    return white


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    out = np.empty((*gray.shape, 3), np.uint8)
    for channel in range(3):  # three plain copies: far faster than a broadcast
        out[:, :, channel] = gray
    return out


def _orient(rgb: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (as Pillow's ImageOps.exif_transpose does) to the array."""
    turned = {
        2: lambda a: a[:, ::-1],
        3: lambda a: a[::-1, ::-1],
        4: lambda a: a[::-1],
        5: lambda a: a.transpose(1, 0, 2),
        6: lambda a: np.rot90(a, -1),
        7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),
        8: lambda a: np.rot90(a, 1),
    }.get(orientation)
    return rgb if turned is None else np.ascontiguousarray(turned(rgb))
