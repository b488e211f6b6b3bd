"""int8 (model_training.quantize): the card's parity record, the rule, and which graph is served."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from app.faces.crop import crop_whole, read_rgb
from app.model.model_dir import INT8, ONNX, AgeModel, ModelDirError
from harness.data import MANIFEST
from model_training.dataset import read_manifest
from model_training.quantize import ATTEMPTS, PARITY, float_only_nodes, passes, prepared, quantized


def _faces(utkface_dir: Path, split: str, n: int) -> np.ndarray:
    faces = read_manifest(MANIFEST, split)[:n]
    return np.stack([crop_whole(read_rgb(str(utkface_dir / f.path)), 64) for f in faces]).astype("float32")


def test_export_records_int8_parity_and_keeps_the_file_only_where_it_passed(tiny_model_dir):
    int8 = json.loads((tiny_model_dir / "model.json").read_text())["int8"]
    attempts = int8["attempts"]
    assert 1 <= len(attempts) <= len(ATTEMPTS) and int8["calibration_faces"] == 300
    for attempt, tried in zip(attempts, ATTEMPTS, strict=False):  # in the fixed order, until one passed
        assert {k: attempt[k] for k in tried} == tried
        assert attempt["passed"] == passes(attempt["sources"])
        assert attempt["ms_per_face_float"] > 0 and attempt["ms_per_face_int8"] > 0
        source = attempt["sources"]["utkface"]
        assert source["faces"] == 200 and 0 <= source["mean_abs_age_change"] <= source["p95_abs_age_change"]
    assert not any(a["passed"] for a in attempts[:-1])  # no attempt after one that passed
    assert int8["passed"] == attempts[-1]["passed"] == (int8["file"] == INT8)
    assert (tiny_model_dir / INT8).is_file() == int8["passed"]


def test_the_rule_is_per_source_mae_and_coverage():
    def source(mae: float, coverage: float) -> dict:
        return {"mae_float": 5.0, "mae_int8": mae, "interval_coverage_float": 0.9, "interval_coverage_int8": coverage}

    assert passes({"aaf": source(5.0 + PARITY["mae"], 0.9), "utkface": source(4.96, 0.909)})
    assert not passes({"aaf": source(5.06, 0.9), "utkface": source(5.0, 0.9)})  # one source is enough to fail
    assert not passes({"aaf": source(5.0, 0.9), "utkface": source(5.0, 0.888)})


def test_the_head_and_the_first_convolutions_stay_float(tiny_model_dir):
    graph = onnx.load(str(tiny_model_dir / ONNX))
    kept = set(float_only_nodes(graph, float_convs=2))
    by_name = {n.name: n for n in graph.graph.node}
    assert {by_name[n].op_type for n in kept} >= {"GlobalAveragePool", "MatMul", "Softmax"}
    assert sum(by_name[n].op_type == "Conv" for n in kept) == 2
    first = next(n for n in graph.graph.node if n.op_type == "Conv")
    assert first.name in kept and first.name not in float_only_nodes(graph, float_convs=0)


@pytest.fixture(scope="module")
def int8_model_dir(tiny_model_dir, utkface_dir, tmp_path_factory) -> Path:
    """The tiny model with an int8 graph (quantized here, whatever its parity) that its card says passed."""
    out = tmp_path_factory.mktemp("int8") / "tiny-int8"
    shutil.copytree(tiny_model_dir, out)
    path = tmp_path_factory.mktemp("prepared") / "prepared.onnx"
    graph = prepared(out / ONNX, path)
    quantized(path, out / INT8, _faces(utkface_dir, "train", 32), "minmax", float_only_nodes(graph, float_convs=0))
    card = json.loads((out / "model.json").read_text())
    (out / "model.json").write_text(json.dumps({**card, "int8": {**card["int8"], "passed": True, "file": INT8}}))
    return out


def test_onnx_serves_int8_where_the_card_says_it_passed_and_float_when_told(int8_model_dir, utkface_dir):
    x = _faces(utkface_dir, "val", 16)
    int8, float32 = AgeModel(int8_model_dir), AgeModel(int8_model_dir, precision="float")
    assert (int8.precision, float32.precision) == ("int8", "float")
    assert AgeModel(int8_model_dir, runtime="tensorflow").precision == "float"  # int8 is ONNX Runtime's only
    p8, age8 = int8.predict(x)
    p32, age32 = float32.predict(x)
    assert not np.allclose(p8, p32, atol=1e-6)  # another graph ran
    np.testing.assert_allclose(p8.sum(axis=1), 1, atol=1e-4)
    assert np.abs(age8 - age32).mean() < 5  # the same model, a few bits coarser
    graph = onnx.load(str(int8_model_dir / INT8))
    assert any(n.op_type == "QuantizeLinear" for n in graph.graph.node)


def test_a_card_whose_int8_failed_is_served_float(int8_model_dir, tmp_path):
    failed = tmp_path / "failed"
    shutil.copytree(int8_model_dir, failed)
    card = json.loads((failed / "model.json").read_text())
    (failed / "model.json").write_text(json.dumps({**card, "int8": {**card["int8"], "passed": False}}))
    assert AgeModel(failed).precision == "float"


def test_a_missing_int8_file_that_the_card_promises_is_a_clear_error(int8_model_dir, tmp_path):
    missing = tmp_path / "missing"
    shutil.copytree(int8_model_dir, missing)
    (missing / INT8).unlink()
    with pytest.raises(ModelDirError, match="model.int8.onnx is missing .MODEL_PRECISION=float"):
        AgeModel(missing)
    assert AgeModel(missing, precision="float").precision == "float"


def test_an_unknown_precision_is_refused(tiny_model_dir):
    with pytest.raises(ValueError, match="unknown precision 'int4'"):
        AgeModel(tiny_model_dir, precision="int4")


def test_the_quantize_command_rewrites_the_record(tiny_model_dir, utkface_dir, tmp_path, capsys):
    from model_training.__main__ import main

    copy = tmp_path / "requantized"
    shutil.copytree(tiny_model_dir, copy)
    (copy / INT8).unlink(missing_ok=True)
    card = json.loads((copy / "model.json").read_text())
    (copy / "model.json").write_text(json.dumps({k: v for k, v in card.items() if k != "int8"}))
    with pytest.raises(SystemExit):  # the card names ../shared/data/UTKFace by its name only
        main(["quantize", str(copy), "--int8-faces", "20"])
    assert "recipe names the data root UTKFace, which is not here: give it" in capsys.readouterr().err
    main(["quantize", str(copy), "--data-root", str(utkface_dir), "--int8-faces", "20"])
    int8 = json.loads((copy / "model.json").read_text())["int8"]
    assert int8["attempts"][0]["sources"]["utkface"]["faces"] == 20  # the recipe's manifest, its validation faces
    assert (copy / INT8).is_file() == int8["passed"]
