"""Export (model_training.export): the model directory's contract, both runtimes, output smoothing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from app.faces.crop import crop_whole, read_rgb
from app.model.model_dir import AgeModel
from harness.data import MANIFEST
from model_training.config import load_recipe
from model_training.dataset import read_manifest


def test_export_writes_the_contract(tiny_model_dir):
    card = json.loads((tiny_model_dir / "model.json").read_text())
    assert card["name"] == "tiny" and card["version"] == "0.0.0-test"  # the recipe's name, unless --name
    assert card["input_size"] == 64 and card["ages"] == list(range(101))
    assert card["backbone"] == "mobilenet_v2"
    assert set(card["crops"]) == {"yunet", "dnn", "haar"}
    assert len(card["crops"]["yunet"]["template"]) == 5  # YuNet's crop is a landmark template
    for name, crop in card["crops"].items():
        assert set(crop) >= ({"template", "source"} if name == "yunet" else {"scale", "shift_x", "shift_y", "source"})
        assert crop["source"]["detector"]["name"] == name
    assert card["training"]["manifest_sha256"]
    assert card["training"]["counts"] == {"train": 18491, "val": 2310, "test": 2312}
    assert card["metrics"]["validation"]["mae"] > 0
    assert card["calibration"]["smoothing"]["sigma_per_year"] == 0.05  # the recipe's, applied at export
    record = tiny_model_dir / "training"  # the run's record travels with the model
    assert (record / "history.csv").read_text().startswith("stage,epoch")
    assert load_recipe(record / "config.json").input_size == 64 and (record / "curves.png").stat().st_size > 0


def test_saved_model_signature_and_parity_with_keras(tiny_run, tiny_model_dir, utkface_dir, tiny_recipe):
    import tensorflow as tf

    from model_training.model import build_model, with_temperature

    sig = tf.saved_model.load(str(tiny_model_dir / "saved_model")).signatures["serving_default"]
    (spec,) = sig.structured_input_signature[1].values()
    assert spec.name == "image" and spec.shape.as_list() == [None, 64, 64, 3] and spec.dtype == tf.float32
    assert set(sig.structured_outputs) == {"probabilities", "expected_age"}

    faces = read_manifest(MANIFEST, "test")[:6]
    x = np.stack([crop_whole(read_rgb(str(utkface_dir / f.path)), 64) for f in faces]).astype("float32")
    keras_model = build_model(tiny_recipe, weights="none")
    keras_model.load_weights(tiny_run / "best.weights.h5")
    temperature = json.loads((tiny_model_dir / "model.json").read_text())["calibration"]["temperature"]
    calibrated_model = with_temperature(keras_model, temperature, tiny_recipe.ages, tiny_recipe.smoothing_kernel())
    want = calibrated_model(x, training=False)
    p, age = AgeModel(tiny_model_dir, precision="float").predict(x)
    np.testing.assert_allclose(p, want["probabilities"], atol=1e-5)
    np.testing.assert_allclose(age, want["expected_age"], atol=1e-4)
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-5)


def test_export_with_output_smoothing_runs_alike_in_both_runtimes(tiny_run, utkface_dir, tmp_path):
    import shutil

    from model_training.export import export

    run = tmp_path / "smoothed-run"
    shutil.copytree(tiny_run, run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "smooth_sigma": 1.0, "smooth_sigma_per_year": 0.05}))
    crops = {"dnn": json.loads((MANIFEST.parent / "crop_dnn.json").read_text())}
    card = export(
        run, tmp_path / "smoothed", crops, version="0.0.0-test", calibration_faces=64, int8_faces=64, log=lambda m: None
    )
    assert card["calibration"]["smoothing"]["sigma_per_year"] == 0.05
    faces = read_manifest(MANIFEST, "test")[:6]
    x = np.stack([crop_whole(read_rgb(str(utkface_dir / f.path)), 64) for f in faces]).astype("float32")
    p_tf, _ = AgeModel(tmp_path / "smoothed", runtime="tensorflow").predict(x)
    p_onnx, _ = AgeModel(tmp_path / "smoothed", runtime="onnx", precision="float").predict(x)
    np.testing.assert_allclose(p_tf, p_onnx, atol=1e-4)  # the smoothing converts to ONNX as it runs in TF
    np.testing.assert_allclose(p_tf.sum(axis=1), 1, atol=1e-5)


def test_the_card_records_what_a_warm_started_run_started_from(tiny_run, tiny_model_dir, tmp_path):
    import shutil

    from model_training.card import training_record
    from model_training.dataset import file_sha256

    def copy_run(name: str, warm_start: str) -> Path:
        run = tmp_path / name
        shutil.copytree(tiny_run, run)
        config = json.loads((run / "config.json").read_text())
        (run / "config.json").write_text(json.dumps({**config, "name": name, "warm_start": warm_start}))
        return run

    first = copy_run("from-a-model", str(tiny_model_dir))  # e.g. a prior stage on a shipped model
    second = copy_run("from-a-run", str(first / "best.weights.h5"))  # e.g. a prior stage on a run
    record = training_record(second)
    assert record["recipe"]["name"] == "from-a-run"
    start = record["warm_start_from"]
    assert start["sha256"] == file_sha256(first / "best.weights.h5")
    assert start["run"]["recipe"]["name"] == "from-a-model" and start["run"]["epochs"] == {"frozen": 1, "finetune": 1}
    model = start["run"]["warm_start_from"]
    assert (model["model"], model["version"]) == ("tiny", "0.0.0-test")
    assert model["training"]["recipe"]["name"] == "tiny" and "warm_start_from" not in model["training"]
    assert training_record(tiny_run).keys() == model["training"].keys()  # nothing more for a run from ImageNet
    (first / "best.weights.h5").unlink()  # a run folder cleared since: the file is still named
    # (by its name alone, as every path outside the repository is on a card)
    assert training_record(second)["warm_start_from"] == {"weights": "best.weights.h5", "missing": True}


def test_an_ensemble_exports_as_one_graph_of_its_members_mean(tiny_run, tiny_model_dir, utkface_dir, tmp_path):
    import shutil

    import pytest

    from app.model.distribution import calibrated
    from harness.data import CROPS
    from model_training.__main__ import main
    from model_training.export import trained_model

    other = tmp_path / "other-run"  # a second, different network: the tiny run with its head changed
    shutil.copytree(tiny_run, other)
    _, recipe, model = trained_model(other)
    head = model.get_layer("probabilities")
    kernel, bias = head.get_weights()
    head.set_weights([kernel * 1.5, bias[::-1].copy()])
    model.save_weights(other / "stage-changed.weights.h5")
    members = [other / "stage-changed.weights.h5", tiny_model_dir]  # the first's data folder is used
    out = tmp_path / "ensemble"
    crops = [arg for path in CROPS for arg in ("--crop", str(path))]
    main(
        [
            "export",
            *map(str, members),
            "--out",
            str(out),
            "--version",
            "0.0.0-test",
            "--calibration-faces",
            "64",
            "--int8-faces",
            "64",
            *crops,
        ]
    )  # noqa: E501

    card = json.loads((out / "model.json").read_text())
    assert (card["name"], card["backbone"]) == ("dex-age", "mobilenet_v2 + mobilenet_v2")
    first, second = card["training"]["members"]
    assert first["weights"] == "stage-changed.weights.h5" and first["run"]["recipe"]["name"] == "tiny"
    assert (second["model"], second["version"]) == ("tiny", "0.0.0-test")  # a model directory, with its record
    assert (out / "training" / "member-0" / "history.csv").is_file()
    assert (out / "training" / "member-1" / "config.json").is_file()
    assert card["metrics"]["validation"]["mae"] > 0 and card["calibration"]["faces"] == 64

    faces = read_manifest(MANIFEST, "test")[:6]
    x = np.stack([crop_whole(read_rgb(str(utkface_dir / f.path)), 64) for f in faces]).astype("float32")
    raw = [np.asarray(trained_model(m)[2](x, training=False)["probabilities"]) for m in members]
    assert np.abs(raw[0] - raw[1]).max() > 1e-3  # two networks that answer differently
    want = calibrated(np.mean(raw, axis=0), card["calibration"]["temperature"], recipe.smoothing_kernel())
    for runtime in ("tensorflow", "onnx"):
        p, age = AgeModel(out, runtime=runtime, precision="float").predict(x)
        np.testing.assert_allclose(p, want, atol=1e-4)
        np.testing.assert_allclose(age, want @ np.array(recipe.ages), rtol=1e-4)
    with pytest.raises(ValueError, match="ensemble"):  # its members are what runs are compared with
        trained_model(out)
