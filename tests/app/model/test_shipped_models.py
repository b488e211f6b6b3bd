"""Every shipped model directory records its int8 parity, and serves int8 exactly where it passed."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.faces.crop import crop_whole
from app.model.model_dir import INT8, AgeModel
from harness.data import REPO, val_chips
from model_training.quantize import passes

SHIPPED = sorted(p for p in (REPO / "models").iterdir() if (p / "model.json").is_file())


def test_there_are_shipped_models():
    assert {p.name for p in SHIPPED} >= {"dex-age", "dex-mobilenet_v2"}


@pytest.mark.parametrize("model_dir", SHIPPED, ids=lambda p: p.name)
def test_int8_parity_is_recorded_and_the_file_is_there_only_where_it_passed(model_dir):
    int8 = json.loads((model_dir / "model.json").read_text())["int8"]
    assert int8["passed"] == passes(int8["attempts"][-1]["sources"])
    assert set(int8["attempts"][-1]["sources"]) == {"aaf", "utkface"}  # both sources it was trained on
    assert (model_dir / INT8).is_file() == int8["passed"] == (int8["file"] == INT8)


@pytest.mark.parametrize("model_dir", SHIPPED, ids=lambda p: p.name)
def test_the_served_int8_graph_answers_as_the_float_one_on_real_faces(model_dir, utkface_dir):
    served, float32 = AgeModel(model_dir, threads=1), AgeModel(model_dir, threads=1, precision="float")
    assert served.precision == ("int8" if (model_dir / INT8).is_file() else "float")
    x = np.stack([crop_whole(chip, served.input_size) for chip in val_chips(utkface_dir, 8)]).astype("float32")
    delta = np.abs(served.predict(x)[1] - float32.predict(x)[1])
    assert delta.mean() < 1.0 and delta.max() < 4.0  # years; the card's p95 over 1,000 faces a source is ~2


@pytest.mark.parametrize("model_dir", SHIPPED, ids=lambda p: p.name)
def test_both_runtimes_run_the_same_float_graph(model_dir, utkface_dir):
    tf, onnx = AgeModel(model_dir, runtime="tensorflow"), AgeModel(model_dir, threads=1, precision="float")
    x = np.stack([crop_whole(chip, onnx.input_size) for chip in val_chips(utkface_dir, 4)]).astype("float32")
    p_tf, _ = tf.predict(x)
    p_onnx, _ = onnx.predict(x)
    np.testing.assert_allclose(p_onnx, p_tf, atol=1e-4)
