"""The README's example answer is what the shipped model answers (model, box, landmarks, age, interval)."""

import json
import re

import pytest

from app.config import SHIPPED_MODEL
from app.estimator import Estimator
from harness.data import REPO


def _readme_example() -> dict:
    """The JSON block that follows the README's curl example."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"curl -F file=@\S*grace_hopper\.bmp.*?```json\n(.*?)```", text, re.S)
    assert block, "the README shows no answer for grace_hopper.bmp"
    return json.loads(block.group(1))


def test_the_readme_example_is_the_shipped_models_answer(test_images):
    """The default's answer (the int8 graph where it passed; tests/app/model/test_shipped_models.py
    holds the float graphs of both runtimes to it)."""
    want = _readme_example()
    got = Estimator.from_dir(SHIPPED_MODEL, detector="yunet").answer(
        test_images / "grace_hopper.bmp", include_distribution=False
    )
    assert got["model"] == want["model"] and got["image"] == want["image"]
    assert len(got["faces"]) == len(want["faces"]) == 1
    face, shown = got["faces"][0], want["faces"][0]
    assert face["box"] == shown["box"] and face["age_interval"] == shown["age_interval"]
    assert face["age"] == pytest.approx(shown["age"], abs=0.01) and face["age_std"] == pytest.approx(
        shown["age_std"], abs=0.01
    )
    assert face["detection_score"] == pytest.approx(shown["detection_score"], abs=1e-4)
    for name, point in shown["landmarks"].items():
        assert face["landmarks"][name] == pytest.approx(point, abs=0.2)
    assert shown["distribution"] is None and set(want["timings_ms"]) == set(got["timings_ms"])
