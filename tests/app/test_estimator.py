"""The in-process API: what notebooks, the `dex-age` command and the service all call."""

from __future__ import annotations

import numpy as np
import pytest

from app.estimator import Estimator
from app.imaging import ImageError, decode


@pytest.fixture(scope="module")
def estimator(tiny_model_dir) -> Estimator:
    return Estimator.from_dir(tiny_model_dir)  # as the `service` fixture serves it: the defaults


def _without_timings(answer: dict) -> dict:
    return {k: v for k, v in answer.items() if k != "timings_ms"}


def _same(a, b) -> bool:
    """Equal, numbers to within what thread counts change in a float32 forward pass."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= 2e-3
    return a == b


def test_the_api_answers_as_the_service_does(estimator, client, test_images):
    path = test_images / "face.jpg"
    served = client.post("/predict", files={"file": ("face.jpg", path.read_bytes())}).json()
    mine = estimator.answer(path)
    assert _same(_without_timings(mine), _without_timings(served))
    assert [f["box"] for f in mine["faces"]] == [f["box"] for f in served["faces"]] and len(mine["faces"]) == 4
    assert mine["timings_ms"].keys() == served["timings_ms"].keys()


def test_a_path_bytes_or_pixels_give_the_same_faces(estimator, test_images):
    path = test_images / "grace_hopper.bmp"
    by_path, by_bytes = estimator.answer(str(path)), estimator.answer(path.read_bytes())
    by_pixels = estimator.answer(decode(path.read_bytes(), 10**8), include_distribution=False)
    assert _same(_without_timings(by_path), _without_timings(by_bytes))
    assert _same([f["age"] for f in by_pixels["faces"]], [f["age"] for f in by_path["faces"]])
    assert by_pixels["faces"][0]["distribution"] is None


def test_bad_input_raises_the_api_error_or_says_what_an_array_must_be(estimator):
    with pytest.raises(ImageError) as err:
        estimator.answer(b"not an image")
    assert err.value.error == "not_an_image"
    with pytest.raises(ValueError, match="RGB uint8"):
        estimator.answer(np.zeros((10, 10), np.float32))


def test_several_images_through_one_forward_give_each_images_answer(tiny_model_dir, test_images):
    one_by_one = Estimator.from_dir(tiny_model_dir, runtime="onnx")
    paths = [test_images / "face.jpg", test_images / "cat.bmp", test_images / "grace_hopper.bmp"]
    results = one_by_one.predictions([*paths, b"not an image"])
    assert isinstance(results[-1], ImageError) and results[-1].error == "not_an_image"
    for path, prediction in zip(paths, results, strict=False):
        alone = _without_timings(one_by_one.answer(path))
        together = _without_timings(one_by_one.answer_from(prediction))
        assert len(together["faces"]) == len(alone["faces"]) and _same(together, alone)
