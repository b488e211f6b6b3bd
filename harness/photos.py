"""The photos the benchmarks time: the test photos, and larger canvases with their faces pasted
at natural size (640×480, 1920×1080, 4000×3000); and the median of repeated timings."""

from __future__ import annotations

import io
import statistics
import time

from PIL import Image

from model_training.dataset import TEST_IMAGES


def _jpeg(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.convert("RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def photos() -> dict[str, bytes]:
    """The test photos, plus larger canvases with their faces pasted at natural size."""
    images = TEST_IMAGES
    face, hopper = Image.open(images / "face.jpg"), Image.open(images / "grace_hopper.bmp")
    out = {p.name: p.read_bytes() for p in sorted(images.iterdir()) if p.suffix in {".jpg", ".bmp"}}
    for w, h in ((640, 480), (1920, 1080), (4000, 3000)):
        canvas = Image.new("RGB", (w, h), (118, 124, 130))
        canvas.paste(face, (0, 0) if w == 640 else (w // 10, h // 8))
        if w > 640:
            canvas.paste(hopper, (w // 2, h // 3))
        out[f"canvas-{w}x{h}.jpg"] = _jpeg(canvas)
    return out


def median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)
