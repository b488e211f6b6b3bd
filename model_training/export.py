"""Export trained weights as a model directory and check that the SavedModel matches Keras."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from app.faces.crop import spec_from_dict
from app.model.distribution import INTERVAL_MASS, calibrated, covered, fit_temperature
from app.model.model_dir import CARD, ONNX, SAVED_MODEL, TRAINING, AgeModel, read_card
from model_training.aligned import check_template
from model_training.card import REPO, model_card, portable, training_record, warm_start_record
from model_training.config import Recipe, recipe_from_dict
from model_training.dataset import Face, file_sha256, read_manifest
from model_training.evaluate import compute_metrics, load_chips
from model_training.model import build_model, ensemble, warm_start, with_temperature
from model_training.pipeline import make_dataset
from model_training.quantize import PARITY_FACES, write_int8
from model_training.run_dir import MONITOR, RECORD, best_epoch, load_config, locate, read_history

PARITY_TOLERANCE = 1e-5  # on probabilities; relative on the expected age


class _Serving(tf.Module):
    """The serving signature. A plain tf.Module stores each variable once (Keras' ExportArchive
    stored them twice, doubling the SavedModel to 19 MB)."""

    def __init__(self, model: keras.Model, input_size: int) -> None:
        super().__init__()
        self.model = model
        spec = tf.TensorSpec([None, input_size, input_size, 3], tf.float32, name="image")
        self.serve = tf.function(lambda image: self.model(image, training=False), input_signature=[spec])


def validation_probabilities(model: keras.Model, recipe: Recipe, limit: int | None) -> tuple[list[Face], np.ndarray]:
    """The validation faces (the first `limit`) and the model's raw distributions for them, framed as
    the chips are: what the temperature is fitted on, and what runs are compared on."""
    faces = read_manifest(Path(recipe.manifest), "val")[:limit]
    dataset = make_dataset(faces, Path(recipe.data_root), recipe, training=False, batch_size=64)
    return faces, model.predict(dataset, verbose=0)["probabilities"]


def calibrate_temperature(model: keras.Model, recipe: Recipe, limit: int | None) -> dict:
    """Fit the temperature that makes the 90 % interval hold 90 % of the validation faces (with the
    recipe's output smoothing applied after it, as the exported graph does)."""
    return calibration_record(*validation_probabilities(model, recipe, limit), recipe)


def calibration_record(faces: list[Face], probabilities: np.ndarray, recipe: Recipe) -> dict:
    """The card's calibration: the temperature fitted on these faces' raw distributions."""
    true = np.array([f.age for f in faces], dtype=np.float64)
    ages = np.array(recipe.ages, dtype=np.float64)
    kernel = recipe.smoothing_kernel()
    calibration = {
        "method": f"temperature on the softmax, fitted so the central {INTERVAL_MASS:.0%} interval holds the "
        f"true age of {INTERVAL_MASS:.0%} of validation faces",
        "temperature": fit_temperature(probabilities, true, ages, INTERVAL_MASS, kernel=kernel),
        "faces": len(faces),
        "interval_coverage_before": round(float(covered(probabilities, true, ages, INTERVAL_MASS).mean()), 4),
    }
    if kernel is not None:
        calibration["smoothing"] = {
            "sigma": recipe.smooth_sigma,
            "sigma_per_year": recipe.smooth_sigma_per_year,
            "method": "after the temperature, each age's probability is spread over its neighbours by a Gaussian "
            "of σ = sigma + sigma_per_year · age",
        }
    return calibration


def write_saved_model(model: keras.Model, path: Path, input_size: int) -> None:
    module = _Serving(model, input_size)
    tf.saved_model.save(module, str(path), signatures={"serving_default": module.serve})


def write_onnx(model: keras.Model, path: Path, input_size: int) -> None:
    """The same serving function as ONNX, for ONNX Runtime (MODEL_RUNTIME=onnx)."""
    import tf2onnx

    module = _Serving(model, input_size)
    tf2onnx.convert.from_function(
        module.serve, input_signature=module.serve.input_signature, opset=17, output_path=str(path)
    )


def set_crops(model_dir: Path, crops: dict[str, dict], version: str | None = None) -> dict:
    """Replace a model directory's crops (after re-calibrating a detector): the weights are
    unchanged, only the framing of the service's crops."""
    card = read_card(model_dir)
    if "yunet" in crops and "manifest" in card.get("training", {}):
        check_template(REPO / card["training"]["manifest"], spec_from_dict(crops["yunet"]))
    card.pop("crop", None)
    card["crops"] = crops
    if version:
        card["version"] = version
    (Path(model_dir) / CARD).write_text(json.dumps(card, indent=2) + "\n")
    return card


def trained_model(source: Path) -> tuple[str, Recipe, keras.Model]:
    """(label, recipe, Keras model with its raw softmax) of a model directory (its SavedModel's
    weights, with the recipe its card records), a run folder (its best weights) or one weights
    file of a run: what compare_runs scores and an ensemble is made of."""
    source = Path(source)
    if (source / CARD).is_file():
        card = read_card(source)
        if "members" in card.get("training", {}):
            raise ValueError(f"{source} is an ensemble: name its members instead")
        recipe = recipe_from_dict(card["training"]["recipe"])
        model = build_model(recipe, weights="none")
        warm_start(model, source)
        return f"{source.name} {card['version']}", recipe, model
    run_dir, weights, label = locate(source)
    recipe = load_config(run_dir)
    model = build_model(recipe, weights="none")
    model.load_weights(weights)
    return label, recipe, model


def write_model_dir(
    model: keras.Model, out_dir: Path, recipe: Recipe, card: dict, int8_faces: int = PARITY_FACES, log=print
) -> None:
    """Write the calibrated model's SavedModel, ONNX file and card into `out_dir` (which holds its
    training record already), reload both runtimes and check them against Keras, then quantize the
    ONNX graph and record its parity (on `int8_faces` validation faces a source) on the card."""
    write_saved_model(model, out_dir / SAVED_MODEL, recipe.input_size)
    write_onnx(model, out_dir / ONNX, recipe.input_size)
    (out_dir / CARD).write_text(json.dumps(card, indent=2) + "\n")
    images = load_chips(read_manifest(Path(recipe.manifest), "val")[:8], Path(recipe.data_root), recipe.input_size)
    keras_out = model(images, training=False)
    for runtime in ("tensorflow", "onnx"):
        probabilities, expected = AgeModel(out_dir, runtime=runtime).predict(images)
        diff = max(
            float(np.abs(probabilities - np.asarray(keras_out["probabilities"])).max()),
            float(np.abs(expected - np.asarray(keras_out["expected_age"])).max()) / max(1.0, float(expected.max())),
        )
        if diff > PARITY_TOLERANCE:
            raise RuntimeError(f"the exported {runtime} model differs from the Keras model by {diff:g}")
        log(f"exported {out_dir}: {runtime} reloaded, largest difference to Keras {diff:.1e} on {len(images)} faces")
    card["int8"] = write_int8(
        out_dir,
        Path(recipe.manifest),
        Path(recipe.data_root),
        recipe.input_size,
        recipe.ages,
        parity_count=int8_faces,
        log=log,
    )
    (out_dir / CARD).write_text(json.dumps(card, indent=2) + "\n")


def _fresh(out_dir: Path) -> None:
    if out_dir.exists():
        shutil.rmtree(out_dir)
    (out_dir / TRAINING).mkdir(parents=True)


def _check_crops(recipe: Recipe, crops: dict[str, dict]) -> None:
    if "yunet" in crops:  # serving must align faces as the training faces were aligned
        check_template(Path(recipe.manifest), spec_from_dict(crops["yunet"]))


def _copy_record(folder: Path, dest: Path) -> None:
    """A run's record files (config, history, curves), as far as `folder` holds them, into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    for record in RECORD:
        if (folder / record).exists():
            shutil.copyfile(folder / record, dest / record)


def export(
    run_dir: Path,
    out_dir: Path,
    crops: dict[str, dict],
    version: str,
    name: str | None = None,
    calibration_faces: int | None = None,
    int8_faces: int = PARITY_FACES,
    log=print,
) -> dict:
    """Build the model from the run's config and best weights, calibrate its spread on the
    validation split, write MODEL_DIR, verify it, quantize it, and return the card."""
    _, recipe, model = trained_model(run_dir)
    _check_crops(recipe, crops)
    calibration = calibrate_temperature(model, recipe, calibration_faces)
    log(f"temperature {calibration['temperature']} on {calibration['faces']} validation faces")
    model = with_temperature(model, calibration["temperature"], recipe.ages, recipe.smoothing_kernel())

    _fresh(out_dir)
    _copy_record(run_dir, out_dir / TRAINING)
    best = best_epoch(read_history(run_dir), recipe)
    validation = {"mae": float(best[MONITOR])} if best else {}
    card = model_card(name or recipe.name, version, [recipe], crops, training_record(run_dir), calibration, validation)
    write_model_dir(model, out_dir, recipe, card, int8_faces, log)
    return card


def export_ensemble(
    sources: list[Path],
    out_dir: Path,
    crops: dict[str, dict],
    version: str,
    name: str,
    calibration_faces: int | None = None,
    int8_faces: int = PARITY_FACES,
    log=print,
) -> dict:
    """Export the mean of several trained networks' distributions (model directories, run folders
    or a run's weights files, all of one input size and one set of ages, trained on one manifest)
    as one model directory: one temperature fitted on the mean, on the first member's validation
    faces (its manifest and data folder), then its output smoothing; each member's training record
    on the card and in training/."""
    members = [trained_model(source) for source in sources]
    recipe = members[0][1]  # the validation faces, the framing and the output smoothing
    for label, other, _ in members[1:]:
        if (other.input_size, other.ages, Path(other.manifest).resolve()) != (
            recipe.input_size, recipe.ages, Path(recipe.manifest).resolve()
        ):  # fmt: skip
            raise ValueError(f"{label}: another input size, set of ages or manifest than {members[0][0]}")
    _check_crops(recipe, crops)
    model = ensemble([m for *_, m in members], recipe.ages, name)
    faces, raw = validation_probabilities(model, recipe, calibration_faces)
    calibration = calibration_record(faces, raw, recipe)
    log(f"temperature {calibration['temperature']} on {calibration['faces']} validation faces")
    model = with_temperature(model, calibration["temperature"], recipe.ages, recipe.smoothing_kernel())

    _fresh(out_dir)
    for i, source in enumerate(map(Path, sources)):  # a model directory's record, or the run's
        _copy_record(
            source / TRAINING if (source / CARD).is_file() else locate(source)[0], out_dir / TRAINING / f"member-{i}"
        )
    training = {
        "method": "the mean of the members' softmax distributions, then one temperature and the first "
        "member's output smoothing; each member as it was trained (training/member-N/)",
        "members": [warm_start_record(Path(source)) for source in sources],
        "manifest": portable(recipe.manifest),
        "manifest_sha256": file_sha256(Path(recipe.manifest)),
    }
    validation = validation_metrics(faces, raw, recipe, calibration["temperature"])
    card = model_card(name, version, [m for _, m, _ in members], crops, training, calibration, validation)
    write_model_dir(model, out_dir, recipe, card, int8_faces, log)
    return card


def validation_metrics(faces: list[Face], raw: np.ndarray, recipe: Recipe, temperature: float) -> dict:
    """The calibrated model's validation MAE, pooled and per source (what it was chosen on)."""
    true = np.array([f.age for f in faces], dtype=np.float64)
    sources = {"source": np.array([f.source for f in faces])}
    probabilities = calibrated(raw, temperature, recipe.smoothing_kernel())
    metrics = compute_metrics(true, probabilities, np.array(recipe.ages, dtype=np.float64), groups=sources)
    per_source = {str(s): {"mae": round(m["mae"], 4)} for s, m in sorted(metrics["groups"]["source"].items())}
    return {"mae": round(metrics["mae"], 4), **(per_source if len(per_source) > 1 else {})}
