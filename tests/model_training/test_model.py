import json
from dataclasses import replace

import numpy as np
import pytest
from keras import layers

from app.faces.crop import crop_whole, read_rgb
from app.model.model_dir import AgeModel
from harness.data import MANIFEST
from model_training.dataset import read_manifest
from model_training.model import WeightsUnavailable, build_backbone, build_model, set_trainable


@pytest.fixture(scope="module")
def model(tiny_recipe):
    return build_model(tiny_recipe)


def test_outputs_are_a_distribution_and_its_expected_age(model, tiny_recipe):
    x = np.random.default_rng(0).uniform(0, 255, (5, 64, 64, 3)).astype("float32")
    out = model(x, training=False)
    p, age = np.asarray(out["probabilities"]), np.asarray(out["expected_age"])
    assert p.shape == (5, 101) and age.shape == (5,)
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-5)
    assert ((age >= 0) & (age <= 100)).all()
    np.testing.assert_allclose(age, p @ np.array(tiny_recipe.ages, "float32"), rtol=1e-5)


def test_age_range_is_config(tiny_recipe):
    m = build_model(replace(tiny_recipe, min_age=10, max_age=20, weights="none"))
    assert m.output["probabilities"].shape[-1] == 11


@pytest.mark.parametrize("backbone", ["mobilenet_v2", "efficientnet_lite0"])
def test_unfrozen_backbone_keeps_batch_norm_in_inference_mode(tiny_recipe, backbone):
    """The Keras 3 trap: a trainable BN uses batch statistics in training and fine-tuning collapses."""
    weights = tiny_recipe.weights if backbone == "mobilenet_v2" else "imagenet"
    m = build_model(replace(tiny_recipe, backbone=backbone, weights=weights, dropout=0.0))
    set_trainable(m, "all")
    backbone = m.get_layer("backbone")
    bns = [lyr for lyr in backbone.layers if isinstance(lyr, layers.BatchNormalization)]
    assert bns and not any(lyr.trainable for lyr in bns)
    assert any(w.trainable for w in backbone.weights)  # the convolutions do train
    x = np.random.default_rng(1).uniform(0, 255, (4, 64, 64, 3)).astype("float32")
    np.testing.assert_array_equal(
        np.asarray(m(x, training=True)["probabilities"]), np.asarray(m(x, training=False)["probabilities"])
    )


def test_frozen_stage_trains_only_the_head(model):
    set_trainable(model, "head")
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert trainable == {"probabilities"}


def test_imagenet_without_internet_names_the_alternative(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))  # no cached download to fall back on
    with pytest.raises(WeightsUnavailable, match=r"--weights PATH.*shared/weights"):
        build_backbone("resnet50", "imagenet", 64)


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        build_backbone("mobilenet_v2", str(tmp_path / "nope.h5"), 64)


def test_smoothing_in_the_graph_is_the_numpy_kernel(model, tiny_recipe):
    from app.model.distribution import calibrated, smoothing_kernel
    from model_training.model import with_temperature

    ages = np.array(tiny_recipe.ages, np.float64)
    kernel = smoothing_kernel(ages, 1.0, 0.05)
    x = np.random.default_rng(0).uniform(0, 255, (3, tiny_recipe.input_size, tiny_recipe.input_size, 3))
    raw = model(x.astype("float32"), training=False)["probabilities"].numpy()
    out = with_temperature(model, 0.8, tiny_recipe.ages, kernel)(x.astype("float32"), training=False)
    np.testing.assert_allclose(out["probabilities"], calibrated(raw, 0.8, kernel), atol=1e-5)
    np.testing.assert_allclose(out["expected_age"], (out["probabilities"].numpy() * ages).sum(axis=1), atol=1e-3)


def test_a_soup_is_the_mean_of_the_weights(tiny_recipe, tmp_path):
    import keras
    import numpy as np

    from model_training.model import average_weights, build_model

    files, weights = [], []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        model = build_model(tiny_recipe, weights="none")
        files.append(tmp_path / f"{seed}.weights.h5")
        model.save_weights(files[-1])
        weights.append(model.get_weights())
    average_weights(model, files)
    kernel = next(i for i, w in enumerate(weights[0]) if w.ndim == 2)  # the head's dense kernel
    assert not np.allclose(weights[0][kernel], weights[1][kernel])
    np.testing.assert_allclose(model.get_weights()[kernel], (weights[0][kernel] + weights[1][kernel]) / 2, rtol=1e-6)


def test_warm_start_from_a_model_directory_reproduces_its_answers(tiny_recipe, tiny_model_dir, utkface_dir):
    from model_training.model import build_model, warm_start, with_temperature

    model = build_model(tiny_recipe, weights="none")
    warm_start(model, tiny_model_dir)
    card = json.loads((tiny_model_dir / "model.json").read_text())
    faces = read_manifest(MANIFEST, "val")[:6]
    x = np.stack([crop_whole(read_rgb(str(utkface_dir / f.path)), 64) for f in faces]).astype("float32")
    want, _ = AgeModel(tiny_model_dir, precision="float").predict(x)
    kernel = tiny_recipe.smoothing_kernel()
    got = with_temperature(model, card["calibration"]["temperature"], tiny_recipe.ages, kernel)(x, training=False)
    np.testing.assert_allclose(got["probabilities"], want, atol=1e-5)
