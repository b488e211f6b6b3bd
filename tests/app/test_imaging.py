"""Uploads of every supported kind decode to 8-bit RGB in display orientation."""

import io

import numpy as np
import pytest
from PIL import Image, ImageOps

from app.imaging import ImageError, decode

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
    data = _encode(image, "PNG", exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB"))
    assert np.array_equal(decode(data, LIMIT), expected)  # the same pixels where Pillow puts them


def test_pixel_limit_is_checked_before_decoding():
    with pytest.raises(ImageError) as err:
        decode(_encode(Image.new("L", (300, 300))), max_pixels=300 * 300 - 1)
    assert err.value.error == "image_too_large"


def test_translucent_webp_is_composited_over_white_as_pillow_does():
    rgba = np.random.default_rng(0).integers(0, 256, (30, 40, 4), dtype=np.uint8)
    data = _encode(Image.fromarray(rgba, "RGBA"), "WEBP", lossless=True)
    expected = Image.new("RGB", (40, 30), (255, 255, 255))
    expected.paste(Image.open(io.BytesIO(data)), mask=Image.open(io.BytesIO(data)).getchannel("A"))
    assert np.abs(decode(data, LIMIT).astype(int) - np.asarray(expected)).max() <= 1


def test_a_multi_picture_jpeg_decodes_as_its_first_picture(test_images):
    from harness.hostile import mpo, without_mpf

    phone = mpo((test_images / "face.jpg").read_bytes())
    plain = without_mpf(phone)
    assert Image.open(io.BytesIO(phone)).format == "MPO" and Image.open(io.BytesIO(plain)).format == "JPEG"
    assert np.array_equal(decode(phone, LIMIT), decode(plain, LIMIT))


def test_scans_are_counted_in_the_first_picture_only(test_images):
    from app.imaging import jpeg_structure
    from harness.hostile import mpo

    rgb = Image.open(test_images / "grace_hopper.bmp")
    assert jpeg_structure(_encode(rgb, "JPEG")) == (0xC0, 1)
    frame, scans = jpeg_structure(_encode(rgb, "JPEG", progressive=True))
    assert frame == 0xC2 and 6 <= scans <= 12  # libjpeg's progression
    assert jpeg_structure(mpo(_encode(rgb, "JPEG"))) == (0xC0, 1)


def test_cost_rules_leave_ordinary_photos_alone(test_images, utkface_dir):
    """Real photos of every size up to the pixel limit pass the rules (a 39 MP photo-like JPEG too)."""
    from app.imaging import check_cost

    photo = Image.open(test_images / "face.jpg")
    samples = [p.read_bytes() for p in sorted(utkface_dir.glob("*.jpg"))[:200]]
    samples += [
        _encode(photo.resize(size), "JPEG", quality=q, progressive=p)
        for size, q, p in [((6000, 4000), 95, False), ((7600, 5100), 75, True), ((4032, 3024), 85, False)]
    ]
    samples += [_encode(photo.resize((4000, 3000)), "PNG"), _encode(photo.resize((4000, 3000)), "WEBP")]
    for data in samples:
        check_cost(Image.open(io.BytesIO(data)), data)  # raises on refusal
