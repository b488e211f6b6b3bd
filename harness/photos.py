"""The photos the benchmarks time: the test photos, and larger canvases with their faces pasted
at natural size (640×480, 1920×1080, 4000×3000); and the median of repeated timings."""

from __future__ import annotations

import io
import random
import statistics
import time
from pathlib import Path

from PIL import Image, ImageFilter

from model_training.dataset import SHARED_DATA as DATA
from model_training.dataset import TEST_IMAGES, read_manifest

_REPO = Path(__file__).resolve().parents[1]


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


def make_folders(root: Path, chips: int, photos: int, seed: int = 7) -> tuple[Path, Path]:
    """Two folders of real faces under `root`: `chips` UTKFace test chips (links), and `photos`
    photo-like composites (1600×1200 JPEGs of one to three test faces of 90 to 400 px pasted on a
    blurred face; this project holds no folder of real photos)."""
    test = [f for f in read_manifest(_REPO / "manifests" / "utkface.csv") if f.split == "test"]
    chip_dir, photo_dir = root / "chips", root / "photos"
    chip_dir.mkdir()
    photo_dir.mkdir()
    for face in test[:chips]:
        (chip_dir / Path(face.path).name).symlink_to(DATA / "UTKFace" / face.path)
    rng = random.Random(seed)
    for i in range(photos):
        background = Image.open(DATA / "UTKFace" / rng.choice(test).path).convert("RGB")
        canvas = background.resize((1600, 1200)).filter(ImageFilter.GaussianBlur(12))
        for _ in range(rng.randint(1, 3)):
            side = rng.randint(90, 400)
            face = Image.open(DATA / "UTKFace" / rng.choice(test).path).convert("RGB").resize((side, side))
            canvas.paste(face, (rng.randint(0, 1600 - side), rng.randint(0, 1200 - side)))
        canvas.save(photo_dir / f"photo{i:03d}.jpg", quality=90)
    return chip_dir, photo_dir
