"""Videos in the library: frames read and sampled, faces followed into people, one fused answer
each (app.video)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from app.config import SHIPPED_MODEL
from app.estimator import Estimator
from app.faces.crop import Box
from app.video import Tracker, iou, predict_video

SECONDS = 3


@pytest.fixture(scope="module")
def estimator(tiny_model_dir) -> Estimator:
    return Estimator.from_dir(tiny_model_dir, runtime="onnx")


def test_the_python_api_fuses_with_the_models_correlation(clips, tmp_path):
    """With ρ = 1 the fused spread is about its frames'; with ρ < 1 it is narrower (the shipped
    model: the tiny one's distributions are nearly flat)."""
    widths = {}
    for rho in (1.0, 0.1):
        model_dir = tmp_path / f"rho{rho}"
        shutil.copytree(
            SHIPPED_MODEL, model_dir, ignore=shutil.ignore_patterns("saved_model", "evaluation", "training")
        )
        card = json.loads((model_dir / "model.json").read_text())
        (model_dir / "model.json").write_text(json.dumps({**card, "fusion": {"correlation": rho}}))
        answer = predict_video(Estimator.from_dir(model_dir, runtime="onnx"), clips / "four.mp4", fps=4, per_frame=True)
        person = answer["people"][0]
        own = [f for f in answer["frames"] if f["track"] == person["track"]]
        widths[rho] = (person["age_std"], np.median([f["age_std"] for f in own]))
        assert person["effective_frames"] == pytest.approx(len(own) / (1 + (len(own) - 1) * rho), abs=0.01)
        assert answer["video"]["frames_read"] == 12 and answer["video"]["truncated"] is None
    assert widths[1.0][0] >= 0.9 * widths[1.0][1]
    assert widths[0.1][0] < 0.6 * widths[0.1][1]  # 12 frames at ρ = 0.1 are worth 5.7: σ / 2.4 if Gaussian


def test_the_tracker_keeps_a_person_across_a_short_gap_and_not_a_long_one(estimator):
    from app.estimator import FaceResult
    from app.model.distribution import summarize

    p = np.full(101, 1 / 101)
    summary = summarize(p, np.arange(101))

    def face(x: int) -> FaceResult:
        return FaceResult(Box(x, 100, 80, 80), 0.9, None, summary, p)

    tracker = Tracker(max_gap=1.0)
    assert tracker.update(0.0, [face(100), face(400)]) == [0, 1]
    assert tracker.update(0.25, [face(410), face(108)]) == [1, 0]  # matched by overlap, not by order
    assert tracker.update(1.0, [face(116)]) == [0]  # person 1 missed for 0.75 s ...
    assert tracker.update(1.2, [face(420), face(120)]) == [1, 0]  # ... and still themselves
    assert tracker.update(3.0, [face(420)]) == [2]  # gone for 1.8 s: someone new
    assert iou(Box(0, 0, 10, 10), Box(5, 0, 10, 10)) == pytest.approx(50 / 150)


TRACKER_CASES = json.loads((Path(__file__).parents[1] / "data" / "tracker_cases.json").read_text())


def first_seen_order(ids: list[list[int]]) -> list[list[int]]:
    """Track ids renumbered from 0 in order of first appearance (the page numbers from 1)."""
    order: dict[int, int] = {}
    return [[order.setdefault(i, len(order)) for i in frame] for frame in ids]


@pytest.mark.parametrize("case", TRACKER_CASES["cases"], ids=lambda c: c["name"])
def test_the_tracker_gives_the_shared_cases_answers(case):
    from app.estimator import FaceResult
    from app.model.distribution import summarize
    from app.video import MAX_GAP, MIN_IOU

    assert (MIN_IOU, MAX_GAP) == (TRACKER_CASES["min_iou"], TRACKER_CASES["max_gap"])
    p = np.full(101, 1 / 101)
    summary = summarize(p, np.arange(101))
    tracker = Tracker()
    ids = [
        tracker.update(frame["t"], [FaceResult(Box(*b), 0.9, None, summary, p) for b in frame["boxes"]])
        for frame in case["frames"]
    ]
    assert first_seen_order(ids) == case["ids"]
