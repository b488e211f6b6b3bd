"""The run folder, runs/NAME: what `train` writes and `export` and scripts/compare_runs.py read
(the contract of a run, as model_dir.py is the contract of a model directory).

runs/NAME/
  config.json     the resolved recipe (a resumed run reads it back, so it trains what it began)
  history.csv     one row per epoch: stage, epoch, learning rate, losses, MAE, seconds
  curves.png      loss and MAE per epoch, stages marked
  best.weights.h5 the best weights so far by validation MAE, across all stages (since the last
                  stage that restarts it): the weights export takes
  stage-NAME.weights.h5  the best weights as stage NAME ended (a soup stage averages these)
  state.json      the stages already finished, and the face limit of a short run
  backup/STAGE/   Keras' BackupAndRestore: the last epoch of an interrupted stage
runs/features/    pooled features that head refits of one backbone share (train.cached_features)
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

from model_training.config import Recipe, load_recipe
from model_training.plots import plot_history

CONFIG, HISTORY, CURVES, BEST, STATE = "config.json", "history.csv", "curves.png", "best.weights.h5", "state.json"
RECORD = (CONFIG, HISTORY, CURVES)  # what export carries into the model directory's training/
MONITOR = "val_expected_age_mae"  # the validation MAE every best-weights choice is made on
HISTORY_FIELDS = ("stage", "epoch", "learning_rate", "loss", "expected_age_mae", "val_loss", MONITOR, "seconds")


def locate(run: Path) -> tuple[Path, Path, str]:
    """(run folder, weights file, label) of a run folder (its best weights) or of one weights file
    in it (e.g. stage-NAME.weights.h5)."""
    run_dir, weights = (run.parent, run) if run.is_file() else (run, run / BEST)
    label = run_dir.name if weights.name == BEST else f"{run_dir.name}/{weights.stem}"
    return run_dir, weights, label


def stage_weights(run_dir: Path, stage: str) -> Path:
    return run_dir / f"stage-{stage}.weights.h5"


def backup_dir(run_dir: Path, stage: str) -> Path:
    return run_dir / "backup" / stage


def features_cache(run_dir: Path) -> Path:
    return run_dir.parent / "features"


def load_config(run_dir: Path) -> Recipe:
    return load_recipe(run_dir / CONFIG)


def limit(run_dir: Path) -> int | None:
    """The face limit the run was started with (None: every face)."""
    path = run_dir / STATE
    return json.loads(path.read_text()).get("limit") if path.exists() else None


def read_history(run_dir: Path) -> list[dict]:
    path = run_dir / HISTORY
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def append_history(
    run_dir: Path, stage: str, epoch: int, learning_rate: float | str, logs: dict, seconds: float
) -> None:
    """One row of history.csv (a training epoch, or a soup or head-refit stage), and the curves redrawn."""
    path = run_dir / HISTORY
    new = not path.exists()
    row = {
        "stage": stage,
        "epoch": epoch,
        "learning_rate": learning_rate,
        **{k: f"{float(logs[k]):.5f}" for k in HISTORY_FIELDS[3:7] if k in logs},
        "seconds": f"{seconds:.1f}",
    }
    with path.open("a", newline="") as fh:
        writer = csv.DictWriter(fh, HISTORY_FIELDS, lineterminator="\n")
        if new:
            writer.writeheader()
        writer.writerow(row)
    plot_history(read_history(run_dir), run_dir / CURVES)


def best_epoch(history: list[dict], recipe: Recipe) -> dict | None:
    """The history row of the run's best weights: the lowest validation MAE since the last stage
    that restarted the best (see Stage.restarts_best)."""
    restarts = {s.name for s in recipe.stages if s.restarts_best}
    starts = [
        i for i, r in enumerate(history) if r["stage"] in restarts and (i == 0 or history[i - 1]["stage"] != r["stage"])
    ]
    first = starts[-1] if starts else 0
    scored = [r for r in history[first:] if r.get(MONITOR)]
    return min(scored, key=lambda r: float(r[MONITOR])) if scored else None
