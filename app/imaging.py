"""Uploaded bytes → an 8-bit RGB array, with the checks that keep hostile files harmless."""

from __future__ import annotations

import io
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from app.errors import ApiError

FORMATS = {"JPEG", "PNG", "WEBP", "BMP"}
Image.MAX_IMAGE_PIXELS = None  # the service applies its own limit before decoding (see decode)


def decode(data: bytes, max_pixels: int) -> np.ndarray:
    """Decode an upload as RGB uint8, EXIF orientation applied.

    The header is read first, so a decompression bomb is refused before its pixels exist.
    """
    if not data:
        raise ApiError(400, "empty_file", "the uploaded file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:
        raise ApiError(400, "not_an_image", "the file is not an image this service can read") from None
    except Exception as exc:  # noqa: BLE001 - Pillow raises many kinds for hostile headers
        raise ApiError(400, "corrupt_image", f"the image header cannot be read ({type(exc).__name__})") from None
    if image.format not in FORMATS:
        raise ApiError(
            415, "unsupported_image_type", f"{image.format} images are not supported; send JPEG, PNG, WebP or BMP"
        )
    width, height = image.size
    if width < 1 or height < 1:
        raise ApiError(400, "corrupt_image", "the image has no pixels")
    if width * height > max_pixels:
        raise ApiError(
            413, "image_too_large", f"the image has {width}×{height} pixels; the limit is {max_pixels:,} pixels"
        )
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        return _to_rgb8(image)
    except Exception as exc:  # noqa: BLE001 - truncated or corrupt data surfaces here
        raise ApiError(400, "corrupt_image", f"the image data is corrupt or truncated ({type(exc).__name__})") from None


def _to_rgb8(image: Image.Image) -> np.ndarray:
    if image.mode in {"I", "I;16", "I;16B", "I;16L", "F"}:  # 16-bit or float grayscale
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if values.max() > 255 else 255.0
        gray = np.clip(values / top * 255.0, 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if image.mode in {"RGBA", "LA", "PA"} or (image.mode == "P" and "transparency" in image.info):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
    return np.ascontiguousarray(np.asarray(image.convert("RGB"), dtype=np.uint8))
