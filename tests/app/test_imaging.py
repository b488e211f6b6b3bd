"""Uploads of every supported kind decode to 8-bit RGB in display orientation."""

import io

import numpy as np
import pytest
from PIL import Image

from app.errors import ApiError
from app.imaging import decode

LIMIT = 40_000_000


def _encode(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "LA", "P", "1"])
def test_modes_become_rgb8(mode):
    out = decode(_encode(Image.new(mode, (30, 20))), LIMIT)
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8


def test_16_bit_grayscale_is_scaled_not_clipped():
    ramp = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000).astype(np.uint16)
    out = decode(_encode(Image.fromarray(ramp)), LIMIT)
    assert out.dtype == np.uint8
    assert 240 <= out[..., 0].max() <= 250  # 63000 of 65535 is 245 of 255
    assert len(np.unique(out[..., 0])) > 32  # the gradient survives


def test_transparent_pixels_become_white():
    image = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert (decode(_encode(image), LIMIT) == 255).all()


def test_cmyk_jpeg_and_webp_and_bmp():
    assert decode(_encode(Image.new("CMYK", (10, 10)), "JPEG"), LIMIT).shape == (10, 10, 3)
    assert decode(_encode(Image.new("RGB", (10, 12)), "WEBP"), LIMIT).shape == (12, 10, 3)
    assert decode(_encode(Image.new("RGB", (10, 12)), "BMP"), LIMIT).shape == (12, 10, 3)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation):
    image = Image.new("RGB", (40, 20), (0, 0, 0))
    image.paste((255, 255, 255), (0, 0, 10, 10))  # a white mark in the stored top-left corner
    exif = Image.Exif()
    exif[0x0112] = orientation
    out = decode(_encode(image, "JPEG", exif=exif, quality=100), LIMIT)
    rotated = orientation in (5, 6, 7, 8)
    assert out.shape[:2] == ((40, 20) if rotated else (20, 40))


def test_pixel_limit_is_checked_before_decoding():
    with pytest.raises(ApiError) as err:
        decode(_encode(Image.new("L", (300, 300))), max_pixels=300 * 300 - 1)
    assert err.value.status_code == 413
