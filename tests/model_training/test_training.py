"""One short real training run (session fixture `tiny_run`), its export and its evaluation."""

import csv
import json
from dataclasses import replace

import numpy as np
import pytest

from model_training.config import Stage, load_recipe
from model_training.crop import crop_whole, read_rgb
from model_training.dataset import ADULTS, Face, read_manifest
from model_training.evaluate import evaluate
from model_training.model_dir import AgeModel, ModelDirError
from model_training.train import MONITOR, best_epoch, train
from tests.conftest import MANIFEST


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
    p, age = AgeModel(tiny_model_dir).predict(x)
    np.testing.assert_allclose(p, want["probabilities"], atol=1e-5)
    np.testing.assert_allclose(age, want["expected_age"], atol=1e-4)
    np.testing.assert_allclose(p.sum(axis=1), 1, atol=1e-5)


def test_evaluate_writes_metrics_report_and_plots(tiny_model_dir, utkface_dir, tmp_path):
    metrics = evaluate(tiny_model_dir, MANIFEST, utkface_dir, "test", tmp_path, limit=40, log=lambda m: None)
    for name in (
        "metrics.json",
        "report.md",
        "predicted_vs_true.png",
        "error_by_band.png",
        "calibration.png",
        "signed_error_by_group.png",
    ):
        assert (tmp_path / name).is_file(), name
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["count"] == 40 and 0 < saved["mae"] < 100 and 0 <= saved["cs5"] <= 1
    assert saved["mean_predicted_std"] > 0
    assert sum(b["count"] for b in saved["mae_by_band"]) == 40
    assert metrics["mae"] == saved["mae"]
    assert 0 <= saved["modes"]["single_mode_share"] <= 1
    assert sum(g["count"] for g in saved["groups"]["ethnicity"].values()) == 40
    assert set(saved["groups"]["gender"]) <= {"male", "female", "unknown"}
    assert "| White |" in (tmp_path / "report.md").read_text()


def test_evaluate_on_two_sources_reports_and_records_each(tiny_model_dir, utkface_dir, tmp_path):
    """A manifest of two sources (here UTKFace faces relabelled as a second source): each source's
    metrics in metrics.json, report.md and the card's metrics.SPLIT.SOURCE."""
    import shutil

    from model_training.dataset import write_manifest

    faces = read_manifest(MANIFEST, "test")[:30]
    faces = [replace(f, source="aaf" if i % 3 == 0 else "utkface") for i, f in enumerate(faces)]
    write_manifest(faces, tmp_path / "two.csv")
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    metrics = evaluate(model_dir, tmp_path / "two.csv", utkface_dir, "test", tmp_path / "ev", record=True, log=print)
    assert {k: v["count"] for k, v in metrics["by_source"].items()} == {"aaf": 10, "utkface": 20}
    both = np.array([metrics["by_source"][s]["mae"] for s in ("aaf", "utkface")])
    assert metrics["mae"] == pytest.approx((both * [10, 20]).sum() / 30)
    card = json.loads((model_dir / "model.json").read_text())
    assert card["metrics"]["test"]["aaf"]["count"] == 10 and card["metrics"]["test"]["count"] == 30
    report = (tmp_path / "ev" / "report.md").read_text()
    assert "| aaf | 10 |" in report and "| utkface | 20 |" in report


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
    p_onnx, age_onnx = AgeModel(tiny_model_dir, runtime="onnx", threads=1).predict(x)
    np.testing.assert_allclose(p_onnx, p_tf, atol=1e-4)
    np.testing.assert_allclose(age_onnx, age_tf, atol=1e-3)


def test_onnx_runtime_without_model_onnx_is_a_clear_error(tiny_model_dir, tmp_path):
    import shutil

    copy = tmp_path / "no-onnx"
    shutil.copytree(tiny_model_dir, copy)
    (copy / "model.onnx").unlink()
    with pytest.raises(ModelDirError, match="model.onnx is missing"):
        AgeModel(copy, runtime="onnx")


def test_label_distributions_one_hot_or_gaussian_widening_with_age(tiny_recipe):
    from model_training.pipeline import label_distributions

    np.testing.assert_array_equal(label_distributions(tiny_recipe), np.eye(101, dtype=np.float32))
    ldl = label_distributions(replace(tiny_recipe, loss="ldl", ldl_sigma=2.0, ldl_sigma_per_year=0.05))
    np.testing.assert_allclose(ldl.sum(axis=1), 1, atol=1e-5)
    assert all(int(np.argmax(ldl[a])) == a for a in range(101))
    assert ldl[80].max() < ldl[10].max()  # σ = 6 at 80 years, 2.5 at 10: the older target is wider


def test_balanced_weights_even_the_cells_within_the_cap():
    from model_training.pipeline import balanced_weights

    faces = [Face(f"w{i}", "", 25, "train", "male", "White") for i in range(300)]
    faces += [Face(f"b{i}", "", 65, "train", "female", "Black") for i in range(10)]
    faces += [Face(f"a{i}", "", 45, "train", "male", "Asian") for i in range(100)]
    p = balanced_weights(faces, cap=4.0)
    assert p.sum() == pytest.approx(1)
    ratio = p * len(faces)  # how often a face is drawn, relative to plain sampling
    assert ratio.max() <= 4.0 + 1e-9 and ratio[:300].max() < 1 < ratio[300:].min()
    shares = [p[:300].sum(), p[300:310].sum(), p[310:].sum()]
    assert max(shares) - min(shares) < 300 / 410 - 10 / 410  # closer to even than plain sampling


def test_balanced_sampling_by_gender_too_evens_women_and_men_of_one_group():
    from model_training.pipeline import balanced_weights

    faces = [Face(f"m{i}", "", 45, "train", "male", "Asian") for i in range(90)]
    faces += [Face(f"f{i}", "", 45, "train", "female", "Asian") for i in range(30)]
    faces += [Face(f"w{i}", "", 25, "train", "female", "White") for i in range(120)]
    women = slice(90, 120)
    assert balanced_weights(faces, cap=4.0)[women].sum() == pytest.approx(30 / 240)  # one cell: as plain
    by_gender = balanced_weights(faces, cap=4.0, by=("ethnicity", "gender"))
    assert by_gender[women].sum() == pytest.approx(by_gender[:90].sum())  # Asian women as often as men


def test_recipe_options_are_checked_and_a_base_recipe_is_extended(tmp_path):
    from model_training.config import RECIPES

    for path in RECIPES.glob("*.toml"):  # every shipped recipe loads
        assert load_recipe(path.stem).stages, path.name
    assert load_recipe("mobilenet_v2_224").input_size == 224

    compare = load_recipe("mobilenet_v2_compare_ldl_balanced")
    assert compare.loss == "ldl" and compare.sampling == "balanced" and compare.input_size == 128
    assert compare.augment == load_recipe("mobilenet_v2").augment and len(compare.stages) == 1
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'base = "mobilenet_v2"\nloss = "mse"\n[[stages]]\nname="a"\ntrain="all"\nepochs=1\nlearning_rate=1e-5\n'
    )
    with pytest.raises(ValueError, match="loss must be 'ce' or 'ldl'"):
        load_recipe(bad)
    bad.write_text(
        'base = "mobilenet_v2"\n[[stages]]\nname="a"\ntrain="all"\nepochs=1\nlearning_rate=1e-5\nsampling="even"\n'
    )
    with pytest.raises(ValueError, match="stage a: sampling must be"):
        load_recipe(bad)
    bad.write_text(
        'base = "mobilenet_v2"\ngroup_bias_weight = -1\n[[stages]]\nname="a"\ntrain="all"\nepochs=1\n'
        "learning_rate=1e-5\n"
    )
    with pytest.raises(ValueError, match="must not be negative"):
        load_recipe(bad)
    stages = '[[stages]]\nname="a"\ntrain="all"\n[[stages]]\nname="s"\ntrain="soup"\nsoup=["a", "b"]\n'
    bad.write_text('base = "mobilenet_v2"\n' + stages)
    with pytest.raises(ValueError, match="stage s: a soup stage, and only one, names earlier stages"):
        load_recipe(bad)
    bad.write_text('base = "mobilenet_v2"\nsampling = "balanced"\n[[stages]]\nname="h"\ntrain="head_refit"\n')
    with pytest.raises(ValueError, match="stage h: a head refit fits every face once"):
        load_recipe(bad)


def test_warm_start_from_a_model_directory_reproduces_its_answers(tiny_recipe, tiny_model_dir, utkface_dir):
    from model_training.model import build_model, warm_start, with_temperature

    model = build_model(tiny_recipe, weights="none")
    warm_start(model, tiny_model_dir)
    card = json.loads((tiny_model_dir / "model.json").read_text())
    faces = read_manifest(MANIFEST, "val")[:6]
    x = np.stack([crop_whole(read_rgb(str(utkface_dir / f.path)), 64) for f in faces]).astype("float32")
    want, _ = AgeModel(tiny_model_dir).predict(x)
    kernel = tiny_recipe.smoothing_kernel()
    got = with_temperature(model, card["calibration"]["temperature"], tiny_recipe.ages, kernel)(x, training=False)
    np.testing.assert_allclose(got["probabilities"], want, atol=1e-5)


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


def test_flip_averages_the_crop_and_its_mirror(tiny_model_dir, utkface_dir):
    faces = read_manifest(MANIFEST, "val")[:4]
    x = np.stack([crop_whole(read_rgb(str(utkface_dir / f.path)), 64) for f in faces]).astype("float32")
    model = AgeModel(tiny_model_dir, runtime="onnx")
    p, age = model.predict(x, flip=True)
    want = (model.predict(x)[0] + model.predict(x[:, :, ::-1])[0]) / 2
    np.testing.assert_allclose(p, want, atol=1e-6)
    np.testing.assert_allclose(age, want @ model.ages, atol=1e-4)


def test_export_with_output_smoothing_runs_alike_in_both_runtimes(tiny_run, utkface_dir, tmp_path):
    import shutil

    from model_training.export import export

    run = tmp_path / "smoothed-run"
    shutil.copytree(tiny_run, run)
    config = json.loads((run / "config.json").read_text())
    (run / "config.json").write_text(json.dumps({**config, "smooth_sigma": 1.0, "smooth_sigma_per_year": 0.05}))
    crops = {"dnn": json.loads((MANIFEST.parent / "crop_dnn.json").read_text())}
    card = export(run, tmp_path / "smoothed", crops, version="0.0.0-test", calibration_faces=64, log=lambda m: None)
    assert card["calibration"]["smoothing"]["sigma_per_year"] == 0.05
    faces = read_manifest(MANIFEST, "test")[:6]
    x = np.stack([crop_whole(read_rgb(str(utkface_dir / f.path)), 64) for f in faces]).astype("float32")
    p_tf, _ = AgeModel(tmp_path / "smoothed", runtime="tensorflow").predict(x)
    p_onnx, _ = AgeModel(tmp_path / "smoothed", runtime="onnx").predict(x)
    np.testing.assert_allclose(p_tf, p_onnx, atol=1e-4)  # the smoothing converts to ONNX as it runs in TF
    np.testing.assert_allclose(p_tf.sum(axis=1), 1, atol=1e-5)
