"""The DEX training stages, with a run folder that records everything and can be resumed.

runs/NAME/
  config.json     the resolved recipe (a resumed run reads it back, so it trains what it began)
  history.csv     one row per epoch: stage, epoch, learning rate, losses, MAE, seconds
  curves.png      loss and MAE per epoch, stages marked
  best.weights.h5 the best weights so far by validation MAE, across all stages (since the last
                  stage that restarts it)
  stage-NAME.weights.h5  the best weights as stage NAME ended
  state.json      the stages already finished
  backup/STAGE/   Keras' BackupAndRestore: the last epoch of an interrupted stage
"""

from __future__ import annotations

import csv
import json
import random
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import keras
import tensorflow as tf

from model_training.config import Recipe, Stage, load_recipe
from model_training.dataset import read_manifest
from model_training.losses import L1WithGroupBias, age_mae
from model_training.model import build_model, set_trainable, warm_start
from model_training.pipeline import make_dataset
from model_training.plots import plot_history

MONITOR = "val_expected_age_mae"
HISTORY_FIELDS = ("stage", "epoch", "learning_rate", "loss", "expected_age_mae", "val_loss", MONITOR, "seconds")


def choose_strategy() -> tf.distribute.Strategy:
    """MirroredStrategy over all GPUs when there are several, so one command scales up."""
    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else tf.distribute.get_strategy()


def read_history(run_dir: Path) -> list[dict]:
    path = run_dir / "history.csv"
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def best_epoch(history: list[dict], recipe: Recipe) -> dict | None:
    """The history row of the run's best weights: the lowest validation MAE since the last stage
    that restarted the best (see Stage.restart_best)."""
    restarts = {s.name for s in recipe.stages if s.restart_best}
    starts = [
        i for i, r in enumerate(history) if r["stage"] in restarts and (i == 0 or history[i - 1]["stage"] != r["stage"])
    ]
    first = starts[-1] if starts else 0
    scored = [r for r in history[first:] if r.get(MONITOR)]
    return min(scored, key=lambda r: float(r[MONITOR])) if scored else None


class HistoryLogger(keras.callbacks.Callback):
    """Appends each epoch to history.csv and redraws the curves, so a killed run keeps its record."""

    def __init__(self, run_dir: Path, stage: str) -> None:
        super().__init__()
        self.run_dir, self.stage = run_dir, stage

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.monotonic()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        path = self.run_dir / "history.csv"
        new = not path.exists()
        row = {
            "stage": self.stage,
            "epoch": epoch + 1,
            "learning_rate": float(self.model.optimizer.learning_rate),
            **{k: f"{float(logs[k]):.5f}" for k in HISTORY_FIELDS[3:7] if k in logs},
            "seconds": f"{time.monotonic() - self._start:.1f}",
        }
        with path.open("a", newline="") as fh:
            writer = csv.DictWriter(fh, HISTORY_FIELDS, lineterminator="\n")
            if new:
                writer.writeheader()
            writer.writerow(row)
        plot_history(read_history(self.run_dir), self.run_dir / "curves.png")


def _sample(items: list, n: int | None, seed: int) -> list:
    return items if n is None or n >= len(items) else random.Random(seed).sample(items, n)


def _compile(model: keras.Model, stage: Stage, recipe: Recipe) -> None:
    """Cross-entropy against the target distribution (one-hot or Gaussian, see pipeline), plus the
    L1 on the expected age when the recipe weights it, and the group term (losses) when it asks."""
    loss = {"probabilities": keras.losses.CategoricalCrossentropy()}
    weights = {"probabilities": 1.0}
    mae = keras.metrics.MeanAbsoluteError(name="mae")
    if recipe.group_bias_weight > 0:  # the "expected_age" target carries each face's group too
        loss["expected_age"] = L1WithGroupBias(recipe.l1_weight, recipe.group_bias_weight)
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


def train(
    recipe: Recipe,
    run_dir: Path,
    limit: int | None = None,
    log=print,
    extra_callbacks: Sequence[keras.callbacks.Callback] = (),
) -> Path:
    """Run (or resume) every stage of `recipe`; returns the path of the best weights."""
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path, state_path, best = run_dir / "config.json", run_dir / "state.json", run_dir / "best.weights.h5"
    if config_path.exists():
        recipe = load_recipe(config_path)
        log(f"resuming {run_dir} with its saved config")
    else:
        config_path.write_text(recipe.dumps())
    state = json.loads(state_path.read_text()) if state_path.exists() else {"completed": [], "limit": limit}
    limit = state.get("limit")
    state_path.write_text(json.dumps(state, indent=2))

    # seeded by the epochs already run: a fresh run starts from the recipe's seed, and a resumed one
    # does not replay the shuffles, draws and augmentations of the epochs it has already trained
    keras.utils.set_random_seed(recipe.seed + len(read_history(run_dir)))
    faces = read_manifest(Path(recipe.manifest))
    train_faces = _sample([f for f in faces if f.split == "train"], limit, recipe.seed)
    val_faces = _sample([f for f in faces if f.split == "val"], limit and max(limit // 4, 8), recipe.seed)
    log(f"train {len(train_faces)} faces, val {len(val_faces)} faces, input {recipe.input_size}px")
    train_sets: dict[str, tf.data.Dataset] = {}  # by sampling, built when a stage first needs it
    val_ds = make_dataset(val_faces, Path(recipe.data_root), recipe, training=False)

    strategy = choose_strategy()
    with strategy.scope():
        model = build_model(recipe)
    if best.exists():
        model.load_weights(best)
    elif recipe.warm_start:
        warm_start(model, Path(recipe.warm_start))
        log(f"warm start from {recipe.warm_start}")
    verbose = 1 if sys.stdout.isatty() else 2
    for stage in recipe.stages:
        if stage.name in state["completed"]:
            continue
        log(f"stage {stage.name}: train {stage.train}, {stage.epochs} epochs at lr {stage.learning_rate:g}")
        with strategy.scope():
            set_trainable(model, stage.train)
            _compile(model, stage, recipe)
        sampling = stage.sampling or recipe.sampling
        if sampling not in train_sets:
            train_sets[sampling] = make_dataset(
                train_faces, Path(recipe.data_root), replace(recipe, sampling=sampling), training=True
            )
        history = read_history(run_dir)
        fresh = stage.restart_best and not any(r["stage"] == stage.name for r in history)
        chosen = None if fresh else best_epoch(history, recipe)  # the score a new best must beat
        callbacks = [
            keras.callbacks.BackupAndRestore(str(run_dir / "backup" / stage.name)),
            keras.callbacks.ModelCheckpoint(
                str(best),
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
        model.fit(
            train_sets[sampling],
            validation_data=val_ds,
            epochs=stage.epochs,
            callbacks=callbacks + list(extra_callbacks),
            verbose=verbose,
        )
        if best.exists():
            model.load_weights(best)
            shutil.copyfile(best, run_dir / f"stage-{stage.name}.weights.h5")
        state["completed"].append(stage.name)
        state_path.write_text(json.dumps(state, indent=2))
    chosen = best_epoch(read_history(run_dir), recipe)
    if chosen:
        log(f"best weights: {chosen['stage']} epoch {chosen['epoch']}, validation MAE {float(chosen[MONITOR]):.3f}")
    return best
