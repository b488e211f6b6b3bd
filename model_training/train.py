"""The DEX training stages: each stage kind (train the head or the whole network, refit the
head, average weights) into a run folder (model_training.run_dir) that records everything and
can be resumed."""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from model_training.config import Recipe, Stage, load_recipe
from model_training.dataset import Face, read_manifest
from model_training.losses import L1WithGroupBias, age_mae
from model_training.model import adjust_prior, average_weights, build_model, set_trainable, warm_start
from model_training.pipeline import age_prior, bias_groups, clipped_ages, make_dataset, targets
from model_training.run_dir import (
    BEST,
    CONFIG,
    MONITOR,
    STATE,
    append_history,
    backup_dir,
    best_epoch,
    features_cache,
    read_history,
    stage_weights,
)


def choose_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over all GPUs when there are several, so one command scales up."""
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


class HistoryLogger(keras.callbacks.Callback):
    """Appends each epoch to history.csv and redraws the curves, so a killed run keeps its record."""

    def __init__(self, run_dir: Path, stage: str) -> None:
        super().__init__()
        self.run_dir, self.stage = run_dir, stage

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        learning_rate = float(self.model.optimizer.learning_rate)
        append_history(self.run_dir, self.stage, epoch + 1, learning_rate, logs or {}, time.monotonic() - self._start)


def _sample(items: list, n: int | None, seed: int) -> list:
    return items if n is None or n >= len(items) else random.Random(seed).sample(items, n)


def _compile(model: keras.Model, stage: Stage, recipe: Recipe) -> None:
    """Cross-entropy against the target distribution (one-hot or Gaussian, see pipeline), plus the
    L1 on the expected age when the recipe weights it, and the group term (losses) when it asks."""
    loss = {"probabilities": keras.losses.CategoricalCrossentropy()}
    weights = {"probabilities": 1.0}
    mae = keras.metrics.MeanAbsoluteError(name="mae")
    if recipe.group_bias_weight > 0:  # the "expected_age" target carries each face's group too
        groups = len(bias_groups(recipe.group_by))
        loss["expected_age"] = L1WithGroupBias(recipe.l1_weight, recipe.group_bias_weight, groups)
        weights["expected_age"] = 1.0
        mae = keras.metrics.MeanMetricWrapper(age_mae, name="mae")
    elif recipe.l1_weight > 0:
        loss["expected_age"] = keras.losses.MeanAbsoluteError()
        weights["expected_age"] = recipe.l1_weight
    model.compile(
        optimizer=keras.optimizers.Adam(stage.learning_rate),
        loss=loss,
        loss_weights=weights,
        metrics={"expected_age": [mae]},
    )


def pooled_features(model: keras.Model, faces: list[Face], recipe: Recipe, flip: bool = False) -> np.ndarray:
    """The head's input (the backbone's pooled features) for each face's chip, framed as evaluation
    frames it; mirrored first with `flip`."""
    images = make_dataset(faces, Path(recipe.data_root), recipe, training=False, batch_size=64).map(lambda x, _: x)
    if flip:
        images = images.map(tf.image.flip_left_right)
    return keras.Model(model.input, model.get_layer("dropout").input).predict(images, verbose=0)


def cached_features(model: keras.Model, faces: list[Face], recipe: Recipe, cache: Path | None) -> np.ndarray:
    """pooled_features of `faces` (then of their mirror images when the recipe flips), kept in
    `cache` (None: not kept) under a digest of the backbone's weights, the framing and the faces: on 2 cores they
    take about 20 minutes over both sources, and every head refit of one backbone shares them."""
    extractor = keras.Model(model.input, model.get_layer("dropout").input)
    digest = hashlib.sha256()
    for weight in extractor.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    framing = [recipe.input_size, recipe.normalization, recipe.data_root, recipe.augment.flip, *(f.path for f in faces)]
    digest.update(json.dumps(framing).encode())
    path = cache / f"{digest.hexdigest()[:24]}.npy" if cache else None
    if path and path.is_file():
        return np.load(path)
    features = pooled_features(model, faces, recipe)
    if recipe.augment.flip:
        features = np.concatenate([features, pooled_features(model, faces, recipe, flip=True)])
    if path:
        cache.mkdir(parents=True, exist_ok=True)
        np.save(path.with_suffix(".partial.npy"), features)
        path.with_suffix(".partial.npy").replace(path)  # whole or absent, should the run be stopped
    return features


def refit_head(model: keras.Model, stage: Stage, recipe: Recipe, faces: list[Face], cache: Path | None = None) -> dict:
    """Refit `model`'s Dense head on the pooled features of `faces` (and of their mirror images when
    the recipe flips), one full-batch step per epoch, with the losses of every other stage. In a
    batch of 32 the group term sees two to five adults of a group, and lowering the variance of
    their mean pays as well as lowering its bias: the model learnt to shrink its answers (README,
    Model). Over the whole training split only the bias is left to lower. The features are kept in
    `cache` (see cached_features). Returns the last logs."""
    features = cached_features(model, faces, recipe, cache)
    if recipe.augment.flip:
        faces = faces + faces
    # the model's own head layers on a features input: training this model trains `model`'s head
    inputs = keras.Input(features.shape[1:], name="features")
    probabilities = model.get_layer("probabilities")(inputs)
    expected_age = model.get_layer("expected_age")(probabilities)
    head_model = keras.Model(inputs, {"probabilities": probabilities, "expected_age": expected_age})
    _compile(head_model, stage, recipe)
    fitted = head_model.fit(
        features, targets(faces, recipe), batch_size=len(features), epochs=stage.epochs, shuffle=False, verbose=0
    )
    return {k: v[-1] for k, v in fitted.history.items()}


def validation_mae(model: keras.Model, faces: list[Face], val_ds: tf.data.Dataset, recipe: Recipe) -> float:
    """The monitored validation MAE (ages clipped to the model's range, as the targets are)."""
    predicted = model.predict(val_ds, verbose=0)["expected_age"]
    return float(np.mean(np.abs(predicted - clipped_ages(faces, recipe))))


def _stage_without_epochs(
    model: keras.Model,
    stage: Stage,
    recipe: Recipe,
    run_dir: Path,
    train_faces: list[Face],
    val: tuple[list[Face], tf.data.Dataset],
) -> None:
    """A stage without epochs over images (a soup, a head refit, a prior adjustment): one history
    row, and its weights become the run's best."""
    start = time.monotonic()
    if stage.train == "soup":
        average_weights(model, [stage_weights(run_dir, name) for name in stage.soup])
        logs, epochs, learning_rate = {}, 1, ""
    elif stage.train == "prior":
        adjust_prior(model, age_prior(train_faces, recipe), stage.prior_strength)
        logs, epochs, learning_rate = {}, 1, ""
    else:
        logs = refit_head(model, stage, recipe, train_faces, cache=features_cache(run_dir))
        epochs, learning_rate = stage.epochs, stage.learning_rate
    logs[MONITOR] = validation_mae(model, *val, recipe)
    append_history(run_dir, stage.name, epochs, learning_rate, logs, time.monotonic() - start)
    model.save_weights(run_dir / BEST)


def open_run(recipe: Recipe, run_dir: Path, limit: int | None, log=print) -> tuple[Recipe, dict]:
    """The run folder made or reopened: a resumed run trains the recipe it began with (its
    config.json) and its face limit; returns (recipe, state)."""
    if not Path(recipe.manifest).is_file():
        from model_training.aligned import HOW_TO_ALIGN, MANIFEST

        how = f": {HOW_TO_ALIGN}" if Path(recipe.manifest) == MANIFEST else ""
        raise FileNotFoundError(f"the recipe's manifest {recipe.manifest} is missing{how}")
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path, state_path = run_dir / CONFIG, run_dir / STATE
    if config_path.exists():
        recipe = load_recipe(config_path)
        log(f"resuming {run_dir} with its saved config")
    else:
        config_path.write_text(recipe.dumps())
    state = json.loads(state_path.read_text()) if state_path.exists() else {"completed": [], "limit": limit}
    state_path.write_text(json.dumps(state, indent=2))
    return recipe, state


def fit_stage(
    model: keras.Model,
    stage: Stage,
    recipe: Recipe,
    run_dir: Path,
    train_ds: tf.data.Dataset,
    val_ds: tf.data.Dataset,
    callbacks: Sequence[keras.callbacks.Callback] = (),
) -> None:
    """Epochs of a "head" or "all" stage (the model compiled for it): the run's best weights are
    kept whenever the validation MAE beats the best so far (or, for a stage that restarts the best,
    its own best), every epoch is logged and backed up, and the stage stops early on no progress."""
    history = read_history(run_dir)
    fresh = stage.restarts_best and not any(r["stage"] == stage.name for r in history)
    chosen = None if fresh else best_epoch(history, recipe)  # the score a new best must beat
    own = [
        keras.callbacks.BackupAndRestore(str(backup_dir(run_dir, stage.name))),
        keras.callbacks.ModelCheckpoint(
            str(run_dir / BEST),
            monitor=MONITOR,
            mode="min",
            save_best_only=True,
            save_weights_only=True,
            initial_value_threshold=float(chosen[MONITOR]) if chosen else None,
        ),
        keras.callbacks.EarlyStopping(monitor=MONITOR, mode="min", patience=stage.patience),
        HistoryLogger(run_dir, stage.name),
    ]
    # BackupAndRestore leaves the restored epoch on the model, and fit() starts from it; the next
    # stage must start from its own epoch 0 (or its own backup)
    model._initial_epoch = None
    verbose = 1 if sys.stdout.isatty() else 2
    model.fit(train_ds, validation_data=val_ds, epochs=stage.epochs, callbacks=own + list(callbacks), verbose=verbose)


def train(
    recipe: Recipe,
    run_dir: Path,
    limit: int | None = None,
    log=print,
    extra_callbacks: Sequence[keras.callbacks.Callback] = (),
) -> Path:
    """Run (or resume) every stage of `recipe`; returns the path of the best weights."""
    recipe, state = open_run(recipe, run_dir, limit, log)
    limit, best = state.get("limit"), run_dir / BEST
    # seeded by the epochs already run: a fresh run starts from the recipe's seed, and a resumed one
    # does not replay the shuffles, draws and augmentations of the epochs it has already trained
    keras.utils.set_random_seed(recipe.seed + len(read_history(run_dir)))
    faces = read_manifest(Path(recipe.manifest))
    train_faces = _sample([f for f in faces if f.split == "train"], limit, recipe.seed)
    val_faces = _sample([f for f in faces if f.split == "val"], limit and max(limit // 4, 8), recipe.seed)
    log(f"train {len(train_faces)} faces, val {len(val_faces)} faces, input {recipe.input_size}px")
    if recipe.distill_teacher:  # the teachers label every view first (resumable; model_training.distill)
        from model_training.distill import label_views

        label_views(
            train_faces,
            Path(recipe.data_root),
            recipe.augment,
            recipe.input_size,
            recipe.distill_views,
            Path(recipe.distill_teacher),
            log=log,
        )
    train_sets: dict[tuple, tf.data.Dataset] = {}  # built when a stage first needs one
    val_ds = make_dataset(val_faces, Path(recipe.data_root), recipe, training=False)

    strategy = choose_strategy()
    with strategy.scope():
        model = build_model(recipe)
    if best.exists():
        model.load_weights(best)
    elif recipe.warm_start:
        warm_start(model, Path(recipe.warm_start))
        log(f"warm start from {recipe.warm_start}")
    for stage in recipe.stages:
        if stage.name in state["completed"]:
            continue
        if stage.train == "soup":
            log(f"stage {stage.name}: the mean of the weights of {', '.join(stage.soup)}")
        elif stage.train == "prior":
            log(f"stage {stage.name}: the training faces' age prior divided out, strength {stage.prior_strength:g}")
        else:
            log(f"stage {stage.name}: train {stage.train}, {stage.epochs} epochs at lr {stage.learning_rate:g}")
        group_bias_weight = recipe.group_bias_weight if stage.group_bias_weight is None else stage.group_bias_weight
        stage_recipe = replace(recipe, sampling=stage.sampling or recipe.sampling, group_bias_weight=group_bias_weight)
        if stage.train in ("soup", "head_refit", "prior"):
            _stage_without_epochs(model, stage, stage_recipe, run_dir, train_faces, (val_faces, val_ds))
        else:
            with strategy.scope():
                set_trainable(model, stage.train)
                _compile(model, stage, stage_recipe)
            key = (stage_recipe.sampling, group_bias_weight > 0)  # what shapes a training set
            if key not in train_sets:
                train_sets[key] = make_dataset(train_faces, Path(recipe.data_root), stage_recipe, training=True)
            fit_stage(model, stage, stage_recipe, run_dir, train_sets[key], val_ds, extra_callbacks)
        if best.exists():
            model.load_weights(best)
            shutil.copyfile(best, stage_weights(run_dir, stage.name))
        state["completed"].append(stage.name)
        (run_dir / STATE).write_text(json.dumps(state, indent=2))
    chosen = best_epoch(read_history(run_dir), recipe)
    if chosen:
        log(f"best weights: {chosen['stage']} epoch {chosen['epoch']}, validation MAE {float(chosen[MONITOR]):.3f}")
    return best
