"""Loading a model directory (app.model.model_dir): clear errors, runtimes that agree, flip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.faces.crop import crop_whole, read_rgb
from app.model.model_dir import AgeModel, ModelDirError
from harness.data import MANIFEST
from model_training.dataset import read_manifest


def test_model_dir_errors_name_the_problem(tiny_model_dir, tmp_path):
    with pytest.raises(ModelDirError, match="does not exist"):
        AgeModel(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelDirError, match="model.json is missing"):
        AgeModel(tmp_path / "empty")
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_model_dir, bad)
    card = json.loads((bad / "model.json").read_text())
    (bad / "model.json").write_text(json.dumps({**card, "ages": list(range(90))}))
    with pytest.raises(ModelDirError, match="outputs 101 classes but model.json lists 90 ages"):
        AgeModel(bad)


def test_onnx_and_tensorflow_runtimes_agree_on_real_faces(tiny_model_dir, utkface_dir):
    assert (tiny_model_dir / "model.onnx").is_file()
    faces = read_manifest(MANIFEST, "val")[:16]
    x = np.stack([crop_whole(read_rgb(str(utkface_dir / f.path)), 64) for f in faces]).astype("float32")
    p_tf, age_tf = AgeModel(tiny_model_dir, runtime="tensorflow").predict(x)
    p_onnx, age_onnx = AgeModel(tiny_model_dir, runtime="onnx", threads=1, precision="float").predict(x)
    np.testing.assert_allclose(p_onnx, p_tf, atol=1e-4)
    np.testing.assert_allclose(age_onnx, age_tf, atol=1e-3)


def test_onnx_runtime_without_model_onnx_is_a_clear_error(tiny_model_dir, tmp_path):
    import shutil

    copy = tmp_path / "no-onnx"
    shutil.copytree(tiny_model_dir, copy)
    (copy / "model.onnx").unlink()
    with pytest.raises(ModelDirError, match="model.onnx is missing"):
        AgeModel(copy, runtime="onnx", precision="float")


def test_flip_averages_the_crop_and_its_mirror(tiny_model_dir, utkface_dir):
    faces = read_manifest(MANIFEST, "val")[:4]
    x = np.stack([crop_whole(read_rgb(str(utkface_dir / f.path)), 64) for f in faces]).astype("float32")
    model = AgeModel(tiny_model_dir, runtime="onnx")
    p, age = model.predict(x, flip=True)
    want = (model.predict(x)[0] + model.predict(x[:, :, ::-1])[0]) / 2
    np.testing.assert_allclose(p, want, atol=1e-6)
    np.testing.assert_allclose(age, want @ model.ages, atol=1e-4)
