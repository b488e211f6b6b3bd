"""Every bad input gets a clear 4xx JSON error."""

import io

import pytest
from PIL import Image


def _error(r, status, error=None):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) >= {"error", "detail"} and body["detail"]
    assert "Traceback" not in r.text
    if error:
        assert body["error"] == error
    return body


def _upload(client, content: bytes, name="x.jpg", **params):
    return client.post("/predict", params=params, files={"file": (name, content)})


def _image_bytes(fmt: str, size=(64, 64), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 128).save(buf, format=fmt)
    return buf.getvalue()


def test_missing_field_is_422(client):
    body = _error(client.post("/predict", files={"other": ("a.jpg", b"123")}), 422, "invalid_request")
    assert "file" in body["detail"]


def test_no_body_is_422(client):
    _error(client.post("/predict"), 422, "invalid_request")


def test_not_an_image_is_400(client):
    _error(_upload(client, b"hello, this is text" * 10, "notes.txt"), 400, "not_an_image")


def test_empty_file_is_400(client):
    _error(_upload(client, b""), 400, "empty_file")


def test_truncated_jpeg_is_400(client, test_images):
    data = (test_images / "face.jpg").read_bytes()
    _error(_upload(client, data[: len(data) // 2]), 400, "corrupt_image")


def test_corrupt_png_is_400(client):
    data = bytearray(_image_bytes("PNG", (200, 200)))
    data[60:80] = b"\x00" * 20
    _error(_upload(client, bytes(data), "x.png"), 400, "corrupt_image")


@pytest.mark.parametrize("fmt", ["GIF", "TIFF"])
def test_unsupported_image_type_is_415(client, fmt):
    _error(_upload(client, _image_bytes(fmt), f"x.{fmt.lower()}"), 415, "unsupported_image_type")


def test_upload_over_the_byte_limit_is_413(client):
    _error(_upload(client, b"\xff" * (10 * 1024 * 1024 + 1)), 413, "upload_too_large")


def test_streamed_upload_over_the_byte_limit_is_413(client):
    """No Content-Length: the body is counted while it streams and refused past the limit."""

    def chunks():
        boundary = b"--xyz\r\n"
        yield boundary + b'Content-Disposition: form-data; name="file"; filename="a.jpg"\r\n\r\n'
        for _ in range(12):
            yield b"\x00" * (1024 * 1024)
        yield b"\r\n--xyz--\r\n"

    r = client.post("/predict", content=chunks(), headers={"Content-Type": "multipart/form-data; boundary=xyz"})
    _error(r, 413, "upload_too_large")


def test_too_many_pixels_is_413(client):
    """A small file declaring 48 megapixels is refused before its pixels are decoded."""
    data = _image_bytes("PNG", (8000, 6000), mode="L")
    assert len(data) < 1024 * 1024
    _error(_upload(client, data, "big.png"), 413, "image_too_large")


def test_bad_query_values_are_422(client, test_images):
    data = (test_images / "grace_hopper.bmp").read_bytes()
    _error(_upload(client, data, max_faces=0), 422, "invalid_request")
    _error(_upload(client, data, max_faces=1000), 422, "invalid_request")
    _error(_upload(client, data, detect="maybe"), 422, "invalid_request")


def test_unknown_path_and_method_are_json(client):
    _error(client.get("/nope"), 404, "not_found")
    _error(client.get("/predict"), 405, "method_not_allowed")
