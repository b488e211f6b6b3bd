"""model.json, the model card: what a model directory says of how it was made — the recipe with
portable paths, the weights' and manifest's digests, the preprocessing — written in one place
for one network and for an ensemble."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from app.model.model_dir import CARD, read_card
from model_training.config import Recipe
from model_training.dataset import file_sha256, read_manifest
from model_training.run_dir import CONFIG, best_epoch, limit, load_config, read_history

REPO = Path(__file__).resolve().parents[1]
PATHS = {"weights", "manifest", "data_root", "warm_start"}  # the recipe's file paths


def portable(path: str | None) -> str | None:
    """A path as the card may show it: relative to the repository (as recipes write them), never
    the absolute path of the machine that trained the model."""
    if not path or not Path(path).is_absolute():
        return path
    resolved = Path(path).resolve()
    return str(resolved.relative_to(REPO)) if resolved.is_relative_to(REPO) else resolved.name


def training_record(run_dir: Path) -> dict:
    """How a run was made, for the card: its recipe, data, epochs and best epoch, and, where it
    started from another trained network, that network's record too, so a model whose last run
    was a short one (a head refit, a prior stage) still says how all of it was made."""
    recipe = load_config(run_dir)
    history = read_history(run_dir)
    best = best_epoch(history, recipe)
    manifest = read_manifest(Path(recipe.manifest))
    record = {
        "recipe": {k: portable(v) if k in PATHS else v for k, v in recipe.to_dict().items()},
        "init_weights": portable(recipe.weights),
        "manifest": portable(recipe.manifest),
        "manifest_sha256": file_sha256(Path(recipe.manifest)),
        "counts": {s: sum(f.split == s for f in manifest) for s in ("train", "val", "test")},
        "limit": limit(run_dir),
        "epochs": {s.name: sum(r["stage"] == s.name for r in history) for s in recipe.stages},
        "best_epoch": best and {"stage": best["stage"], "epoch": int(best["epoch"])},
    }
    # a run restarting from its own stage file is one run, already recorded above
    if recipe.warm_start and Path(recipe.warm_start).resolve().parent != run_dir.resolve():
        record["warm_start_from"] = warm_start_record(Path(recipe.warm_start))
    return record


def warm_start_record(source: Path) -> dict:
    """What a warm start started from: a model directory's name, version and training record, or a
    run's weights file with that run's record (when its run folder is still there), or the bare
    file with its digest."""
    if (source / CARD).exists():
        card = read_card(source)
        return {"model": card.get("name"), "version": card.get("version"), "training": card.get("training")}
    if not source.is_file():
        return {"weights": portable(str(source)), "missing": True}
    record = {"weights": portable(str(source)), "sha256": file_sha256(source)}
    if (source.parent / CONFIG).exists():
        record["run"] = training_record(source.parent)
    return record


def preprocessing(normalizations: list[str]) -> str:
    """The card's account of what a caller feeds the graph and how a crop is made."""
    names = " and ".join(f"'{n}'" for n in normalizations)
    one = len(normalizations) == 1
    inside = f"backbone's {names} normalisation is" if one else f"backbones' {names} normalisations are"
    return (
        "Input: RGB 0..255 float32, a face crop of input_size x input_size. Crop (crops[detector], for the "
        "detector that found the face): with a landmark template (yunet), the rotation, uniform scale and "
        "shift that map the face's five landmarks (least squares) onto template * input_size, warped "
        "bilinearly (a face over twice the output first shrunk by area averaging); with a box crop (dnn, "
        "haar), the square of side = scale * max(box width, height), centre moved by (shift_x * width, "
        "shift_y * height) from the box's centre, resized (area averaging when shrinking, bilinear when "
        f"growing). Either way the border is replicated outside the image. The {inside} inside the graph."
    )


def model_card(
    name: str,
    version: str,
    recipes: list[Recipe],
    crops: dict[str, dict],
    training: dict,
    calibration: dict,
    validation: dict,
) -> dict:
    """model.json of one network or of an ensemble (its members' recipes, in order): the one place
    its fields are written."""
    return {
        "name": name,
        "version": version,
        "backbone": " + ".join(r.backbone for r in recipes),
        "input_size": recipes[0].input_size,
        "ages": recipes[0].ages,
        "crops": crops,
        "preprocessing": preprocessing([r.normalization for r in recipes]),
        "training": training,
        "calibration": calibration,
        "metrics": {"validation": validation},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
