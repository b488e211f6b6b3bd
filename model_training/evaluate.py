"""Evaluate a model directory on a manifest split: metrics.json, report.md and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from model_training.crop import crop_whole, read_rgb
from model_training.dataset import Face, file_sha256, read_manifest
from model_training.distribution import INTERVAL_MASS, expected_ages, summarize
from model_training.model_dir import CARD, AgeModel
from model_training.plots import plot_bands, plot_calibration, plot_predictions

BANDS = [(lo, lo + 9, f"{lo}-{lo + 9}") for lo in range(0, 70, 10)] + [(70, 10_000, "70+")]


def compute_metrics(true: np.ndarray, probabilities: np.ndarray, ages: np.ndarray, mass: float = INTERVAL_MASS) -> dict:
    """MAE, CS@5, MAE per age band, predicted spread and how well it matches the real error."""
    summaries = [summarize(p, ages, mass) for p in probabilities]
    pred = np.array([s.age for s in summaries])
    std = np.array([s.std for s in summaries])
    inside = np.array([s.low <= t <= s.high for s, t in zip(summaries, true, strict=False)])
    err = np.abs(pred - true)
    bands = [
        {"band": name, "count": int(m.sum()), "mae": float(err[m].mean())}
        for lo, hi, name in BANDS
        if (m := (true >= lo) & (true <= hi)).any()
    ]
    calibration = []
    for chunk in np.array_split(np.argsort(std), min(8, len(std))):
        calibration.append(
            {
                "predicted_std": float(std[chunk].mean()),
                "mae": float(err[chunk].mean()),
                "rmse": float(np.sqrt(((pred[chunk] - true[chunk]) ** 2).mean())),
                "interval_coverage": float(inside[chunk].mean()),
                "count": len(chunk),
            }
        )
    return {
        "count": len(true),
        "mae": float(err.mean()),
        "cs5": float((err <= 5).mean()),
        "rmse": float(np.sqrt(((pred - true) ** 2).mean())),
        "mean_predicted_std": float(std.mean()),
        "interval": {
            "mass": mass,
            "coverage": float(inside.mean()),
            "mean_width": float(np.mean([s.high - s.low for s in summaries])),
        },
        "mae_by_band": bands,
        "calibration": calibration,
    }


def load_chips(faces: list[Face], data_root: Path, size: int) -> np.ndarray:
    """Manifest faces as model inputs, framed as the training chips are (the whole chip, resized)."""
    return np.stack([crop_whole(read_rgb(str(data_root / f.path)), size) for f in faces]).astype(np.float32)


def predict_faces(model: AgeModel, faces: list[Face], data_root: Path, batch_size: int = 64) -> np.ndarray:
    """Probabilities for each face."""
    batches = (faces[i : i + batch_size] for i in range(0, len(faces), batch_size))
    return np.concatenate([model.predict(load_chips(b, data_root, model.input_size))[0] for b in batches])


def write_report(metrics: dict, out_dir: Path, title: str) -> None:
    lines = [
        f"# {title}",
        "",
        f"{metrics['count']} faces. MAE **{metrics['mae']:.2f}** years, CS@5 **{metrics['cs5']:.1%}**, "
        f"RMSE {metrics['rmse']:.2f}, mean predicted std {metrics['mean_predicted_std']:.2f}.",
        "",
        f"The central {metrics['interval']['mass']:.0%} interval holds the true age for "
        f"{metrics['interval']['coverage']:.1%} of faces (mean width {metrics['interval']['mean_width']:.1f} years).",
        "",
        "| age band | faces | MAE |",
        "|---|---:|---:|",
        *[f"| {b['band']} | {b['count']} | {b['mae']:.2f} |" for b in metrics["mae_by_band"]],
        "",
        "Calibration (faces binned by predicted std):",
        "",
        "| mean predicted std | MAE | RMSE | interval coverage | faces |",
        "|---:|---:|---:|---:|---:|",
        *[
            f"| {c['predicted_std']:.2f} | {c['mae']:.2f} | {c['rmse']:.2f} "
            f"| {c['interval_coverage']:.1%} | {c['count']} |"
            for c in metrics["calibration"]
        ],
        "",
        "![predicted vs true](predicted_vs_true.png)",
        "![error by age band](error_by_band.png)",
        "![calibration](calibration.png)",
        "",
    ]
    (out_dir / "report.md").write_text("\n".join(lines))


def evaluate(
    model_dir: Path,
    manifest: Path,
    data_root: Path,
    split: str = "test",
    out_dir: Path | None = None,
    limit: int | None = None,
    record: bool = False,
    log=print,
) -> dict:
    model = AgeModel(model_dir)
    faces = read_manifest(manifest, split)[:limit]
    if not faces:
        raise ValueError(f"no faces in split {split!r} of {manifest}")
    probabilities = predict_faces(model, faces, data_root)
    true = np.array([f.age for f in faces], dtype=np.float64)
    metrics = compute_metrics(true, probabilities, model.ages)
    metrics.update(split=split, manifest_sha256=file_sha256(manifest))

    out_dir = out_dir or Path(model_dir) / "evaluation"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    pred = expected_ages(probabilities, model.ages)
    plot_predictions(true, pred, out_dir / "predicted_vs_true.png")
    plot_bands(metrics["mae_by_band"], out_dir / "error_by_band.png")
    plot_calibration(metrics["calibration"], out_dir / "calibration.png")
    write_report(metrics, out_dir, f"{model.card['name']} {model.card['version']} on the {split} split")
    if record:
        card = dict(model.card)
        card.setdefault("metrics", {})[split] = {
            k: metrics[k] for k in ("count", "mae", "cs5", "rmse", "mean_predicted_std", "interval", "mae_by_band")
        }
        (Path(model_dir) / CARD).write_text(json.dumps(card, indent=2) + "\n")
    log(
        f"{split}: {len(faces)} faces, MAE {metrics['mae']:.3f}, CS@5 {metrics['cs5']:.3f}, "
        f"interval coverage {metrics['interval']['coverage']:.3f} → {out_dir}"
    )
    return metrics
