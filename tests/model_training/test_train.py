"""Training runs (model_training.train, run_dir): stages, resume, soups, head refits and prior
adjustments, on real faces."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from harness.data import MANIFEST
from model_training.config import Stage
from model_training.dataset import ADULTS, read_manifest
from model_training.run_dir import MONITOR, best_epoch
from model_training.train import train


def test_run_folder_records_config_history_and_curves(tiny_run):
    for name in ("config.json", "history.csv", "curves.png", "best.weights.h5", "state.json"):
        assert (tiny_run / name).is_file(), name
    rows = list(csv.DictReader((tiny_run / "history.csv").open()))
    assert [r["stage"] for r in rows] == ["frozen", "finetune"]
    assert all(0 < float(r[MONITOR]) < 100 for r in rows)
    assert json.loads((tiny_run / "state.json").read_text())["completed"] == ["frozen", "finetune"]
    assert json.loads((tiny_run / "config.json").read_text())["input_size"] == 64


def test_interrupted_run_resumes_where_it_stopped(tiny_recipe, tmp_path):
    recipe = replace(tiny_recipe, stages=(Stage("frozen", "head", 1, 1e-3), Stage("finetune", "all", 1, 1e-4)))

    def stop_before_finetune(message: str) -> None:
        if message.startswith("stage finetune"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(recipe, tmp_path, limit=32, log=stop_before_finetune)
    assert json.loads((tmp_path / "state.json").read_text())["completed"] == ["frozen"]

    messages = []
    train(replace(recipe, input_size=96), tmp_path, log=messages.append)  # the saved config wins
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    assert [r["stage"] for r in rows] == ["frozen", "finetune"]
    assert any("resuming" in m for m in messages)
    assert "train 32 faces" in " ".join(messages)  # the limit of the interrupted run is kept


def test_run_interrupted_inside_a_stage_resumes_it_and_runs_the_next(tiny_recipe, tmp_path):
    import keras

    recipe = replace(tiny_recipe, stages=(Stage("frozen", "head", 2, 1e-3, 5), Stage("finetune", "all", 1, 1e-4)))

    class StopAfterFirstEpoch(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(recipe, tmp_path, limit=32, log=lambda m: None, extra_callbacks=[StopAfterFirstEpoch()])
    train(recipe, tmp_path, log=lambda m: None)
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    assert [(r["stage"], r["epoch"]) for r in rows] == [("frozen", "1"), ("frozen", "2"), ("finetune", "1")]


def test_a_resumed_run_does_not_replay_the_random_draws_of_its_first_epochs(tiny_recipe, tmp_path):
    import keras

    recipe = replace(tiny_recipe, stages=(Stage("frozen", "head", 1, 1e-3), Stage("finetune", "all", 1, 1e-4)))
    draws: dict[str, float] = {}

    class RecordFirstDraw(keras.callbacks.Callback):
        def __init__(self, stage: str) -> None:
            super().__init__()
            self.stage = stage

        def on_train_begin(self, logs=None):
            draws[self.stage] = float(np.random.random())

    def stop_before_finetune(message: str) -> None:
        if message.startswith("stage finetune"):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(recipe, tmp_path, limit=32, log=stop_before_finetune, extra_callbacks=[RecordFirstDraw("frozen")])
    train(recipe, tmp_path, log=lambda m: None, extra_callbacks=[RecordFirstDraw("finetune")])
    assert draws["finetune"] != draws["frozen"]


@pytest.mark.parametrize("group_bias_weight", [0.0, 0.1])
def test_training_with_label_distributions_balanced_sampling_and_l1(
    tiny_recipe, tiny_model_dir, tmp_path, group_bias_weight
):
    recipe = replace(
        tiny_recipe,
        loss="ldl",
        ldl_sigma_per_year=0.05,
        l1_weight=0.1,
        group_bias_weight=group_bias_weight,
        sampling="balanced",
        warm_start=str(tiny_model_dir),
        stages=(Stage("finetune", "all", 1, 1e-5, 1),),
    )
    train(recipe, tmp_path, limit=32, log=lambda m: None)
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    assert [r["stage"] for r in rows] == ["finetune"] and 0 < float(rows[0][MONITOR]) < 100


def test_a_stage_can_change_the_sampling_and_restart_the_best_weights(tiny_recipe, tiny_model_dir, tmp_path):
    import h5py

    recipe = replace(
        tiny_recipe,
        warm_start=str(tiny_model_dir),
        stages=(
            Stage("finetune", "all", 1, 1e-5, 1),
            # a rate far too high: this stage's epoch is worse, and is kept all the same
            Stage("balance", "all", 1, 1.0, 1, sampling="balanced", restart_best=True),
        ),
    )
    train(recipe, tmp_path, limit=32, log=lambda m: None)
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    assert [r["stage"] for r in rows] == ["finetune", "balance"]
    assert float(rows[1][MONITOR]) > float(rows[0][MONITOR])
    assert best_epoch(rows, recipe)["stage"] == "balance"  # what export records as the best epoch

    def weights(name: str) -> list[np.ndarray]:
        with h5py.File(tmp_path / name) as fh:
            out = []
            fh.visititems(lambda _, v: out.append(np.array(v)) if isinstance(v, h5py.Dataset) else None)
            return out

    finetune, balance, best = (
        weights(f) for f in ("stage-finetune.weights.h5", "stage-balance.weights.h5", "best.weights.h5")
    )
    assert all(np.array_equal(a, b) for a, b in zip(best, balance, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(best, finetune, strict=True))


def test_a_soup_stage_averages_earlier_stages_and_a_head_refit_changes_only_the_head(
    tiny_recipe, tiny_model_dir, tmp_path
):
    from model_training.model import build_model

    recipe = replace(
        tiny_recipe,
        warm_start=str(tiny_model_dir),
        stages=(
            Stage("a", "all", 1, 1e-5, 1, restart_best=True),
            Stage("b", "all", 1, 1e-4, 1, restart_best=True),
            Stage("soup", "soup", soup=("a", "b")),
            Stage("fair", "head_refit", 5, 1e-3, group_bias_weight=1.0),
        ),
    )
    train(recipe, tmp_path, limit=32, log=lambda m: None)
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    assert [(r["stage"], r["epoch"]) for r in rows] == [("a", "1"), ("b", "1"), ("soup", "1"), ("fair", "5")]
    assert all(0 < float(r[MONITOR]) < 100 for r in rows)
    assert best_epoch(rows, recipe)["stage"] == "fair"  # whatever its MAE: it is what the run made

    def weights(name: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
        model = build_model(recipe, weights="none")
        model.load_weights(tmp_path / f"{name}.weights.h5")
        return model.get_layer("backbone").get_weights(), model.get_layer("probabilities").get_weights()

    (a_backbone, a_head), (b_backbone, b_head) = weights("stage-a"), weights("stage-b")
    soup_backbone, soup_head = weights("stage-soup")
    for got, x, y in zip(soup_backbone + soup_head, a_backbone + a_head, b_backbone + b_head, strict=True):
        np.testing.assert_allclose(got, (x + y) / 2, rtol=1e-6, atol=1e-7)
    fair_backbone, fair_head = weights("best")
    assert all(np.array_equal(x, y) for x, y in zip(fair_backbone, soup_backbone, strict=True))
    assert not np.allclose(fair_head[0], soup_head[0])


def test_head_refit_group_term_lowers_the_bias_of_each_groups_adults(tiny_recipe, tiny_model_dir):
    """Over all the training adults of each ethnicity, not a batch's few (train.refit_head)."""
    from model_training.losses import L1WithGroupBias
    from model_training.model import build_model, warm_start
    from model_training.pipeline import adult_groups
    from model_training.train import pooled_features, refit_head

    adults = [f for f in read_manifest(MANIFEST, "train") if ADULTS[0] <= f.age <= ADULTS[1]]
    faces = [f for e in ("White", "Black", "Asian", "Indian") for f in [f for f in adults if f.ethnicity == e][:12]]
    groups = adult_groups(faces)
    assert sorted(set(groups.tolist())) == [0, 1, 2, 3]
    model = build_model(tiny_recipe, weights="none")
    warm_start(model, tiny_model_dir)
    start = model.get_weights()
    features = pooled_features(model, faces, tiny_recipe)

    def group_penalty(group_bias_weight: float) -> float:
        model.set_weights(start)
        # a few small steps: on 96 chips the head soon fits every age, with or without the term
        stage = Stage("fair", "head_refit", 3, 1e-4, group_bias_weight=group_bias_weight)
        refit_head(model, stage, replace(tiny_recipe, group_bias_weight=group_bias_weight), faces)
        expected = model.get_layer("expected_age")(model.get_layer("probabilities")(features))
        truth = np.stack([[f.age for f in faces], groups], axis=1).astype("float32")
        return float(L1WithGroupBias(l1_weight=0.0, group_weight=1.0, groups=6)(truth, expected))  # the term alone

    assert group_penalty(1000.0) < 0.5 * group_penalty(0.0)


def test_head_refits_of_one_backbone_share_its_cached_features(tiny_recipe, tiny_model_dir, tmp_path):
    """Kept under a digest of the backbone's weights and the faces: the same ones are read back,
    another backbone gets its own (train.cached_features)."""
    from model_training.model import build_model, warm_start
    from model_training.train import cached_features, pooled_features

    model = build_model(tiny_recipe, weights="none")
    warm_start(model, tiny_model_dir)
    faces = read_manifest(MANIFEST, "train")[:6]
    first = cached_features(model, faces, tiny_recipe, tmp_path)
    assert first.shape[0] == 12  # each face and its mirror (the recipe flips)
    np.testing.assert_allclose(first[:6], pooled_features(model, faces, tiny_recipe), atol=1e-5)
    assert len(list(tmp_path.glob("*.npy"))) == 1
    np.testing.assert_array_equal(cached_features(model, faces, tiny_recipe, tmp_path), first)
    kernel = model.weights[0]  # the backbone's first convolution
    kernel.assign(kernel * 0.5)
    other = cached_features(model, faces, tiny_recipe, tmp_path)
    assert len(list(tmp_path.glob("*.npy"))) == 2 and not np.allclose(other, first)
    assert cached_features(model, faces[:5], tiny_recipe, None).shape[0] == 10  # no cache: computed


def test_a_prior_stage_divides_the_training_prior_out_of_the_answers(tiny_recipe, tiny_model_dir, tmp_path):
    """p ∝ p_before / prior^α on every face, the backbone untouched (model.adjust_prior)."""
    from model_training.model import build_model, warm_start
    from model_training.pipeline import age_prior, make_dataset

    recipe = replace(tiny_recipe, warm_start=str(tiny_model_dir), stages=(Stage("prior", "prior", prior_strength=0.7),))
    train(recipe, tmp_path, log=lambda m: None)
    rows = list(csv.DictReader((tmp_path / "history.csv").open()))
    assert [(r["stage"], r["epoch"]) for r in rows] == [("prior", "1")]

    before, after = build_model(recipe, weights="none"), build_model(recipe, weights="none")
    warm_start(before, tiny_model_dir)
    after.load_weights(tmp_path / "best.weights.h5")
    for x, y in zip(before.get_layer("backbone").get_weights(), after.get_layer("backbone").get_weights(), strict=True):
        np.testing.assert_array_equal(x, y)
    prior = age_prior(read_manifest(MANIFEST, "train"), recipe)  # every training face: no limit
    assert prior.shape == (len(recipe.ages),) and abs(prior.sum() - 1) < 1e-5 and (prior > 0).all()
    faces = read_manifest(MANIFEST, "val")[:16]
    images = np.concatenate([x for x, _ in make_dataset(faces, Path(recipe.data_root), recipe, training=False)])
    expected = before.predict(images, verbose=0)["probabilities"] / prior**0.7
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(after.predict(images, verbose=0)["probabilities"], expected, rtol=2e-3, atol=1e-6)
