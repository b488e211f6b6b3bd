"""Evaluate a model directory on a manifest split: metrics.json, report.md and PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from app.faces.crop import crop_whole, read_rgb
from app.model.distribution import INTERVAL_MASS, count_modes, expected_ages, summarize
from app.model.model_dir import CARD, AgeModel
from model_training.dataset import ADULTS, BANDS, Face, file_sha256, read_manifest
from model_training.plots import plot_bands, plot_calibration, plot_groups, plot_predictions


def signed_margin(err: np.ndarray) -> float | None:
    """Half-width of the 95 % confidence interval of the mean signed error (normal approximation).
    A group's bias measured over a hundred faces moves by about a year from one sample to the next:
    read a bias against its margin before calling it one."""
    return float(1.96 * err.std(ddof=1) / np.sqrt(len(err))) if len(err) > 1 else None


def _group(err: np.ndarray, inside: np.ndarray, mask: np.ndarray) -> dict:
    """MAE, mean signed error (predicted − true: negative makes people younger) with its 95 %
    margin, CS@5, coverage."""
    return {
        "count": int(mask.sum()),
        "mae": float(np.abs(err[mask]).mean()),
        "signed": float(err[mask].mean()),
        "signed_margin95": signed_margin(err[mask]),
        "cs5": float((np.abs(err[mask]) <= 5).mean()),
        "interval_coverage": float(inside[mask].mean()),
    }


def fairness(true: np.ndarray, err: np.ndarray, inside: np.ndarray, groups: dict[str, np.ndarray]) -> dict:
    """Metrics per value of each group label (ethnicity, gender), for adults of 30–69 within each,
    and per label × age band; groups with no face are left out."""
    adults = (true >= ADULTS[0]) & (true <= ADULTS[1])
    out: dict = {}
    for key, labels in groups.items():
        out[key] = {}
        for value in sorted(set(labels)):
            m = labels == value
            out[key][value] = _group(err, inside, m)
            if (m & adults).any():
                out[key][value]["adults"] = _group(err, inside, m & adults)
            out[key][value]["bands"] = {
                name: _group(err, inside, m & b)
                for lo, hi, name in BANDS
                if (b := (true >= lo) & (true <= hi) & m).any()
            }
    return out


def compute_metrics(
    true: np.ndarray,
    probabilities: np.ndarray,
    ages: np.ndarray,
    mass: float = INTERVAL_MASS,
    groups: dict[str, np.ndarray] | None = None,
) -> dict:
    """MAE, CS@5, MAE per age band, predicted spread and how well it matches the real error, the
    shape of the distributions, and the same per group (ethnicity, gender) when given."""
    summaries = [summarize(p, ages, mass) for p in probabilities]
    pred = np.array([s.age for s in summaries])
    std = np.array([s.std for s in summaries])
    inside = np.array([s.low <= t <= s.high for s, t in zip(summaries, true, strict=False)])
    err = np.abs(pred - true)
    modes = count_modes(probabilities)
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
        "modes": {"single_mode_share": float((modes == 1).mean()), "mean": float(modes.mean())},
        "groups": fairness(true, pred - true, inside, groups or {}),
    }


def load_chips(faces: list[Face], data_root: Path, size: int) -> np.ndarray:
    """Manifest faces as model inputs, framed as the training chips are (the whole chip, resized)."""
    return np.stack([crop_whole(read_rgb(str(data_root / f.path)), size) for f in faces]).astype(np.float32)


def predict_faces(
    model: AgeModel, faces: list[Face], data_root: Path, batch_size: int = 64, flip: bool = False
) -> np.ndarray:
    """Probabilities for each face (`flip`: averaged with the mirror image's, as TTA=flip serves)."""
    batches = (faces[i : i + batch_size] for i in range(0, len(faces), batch_size))
    return np.concatenate([model.predict(load_chips(b, data_root, model.input_size), flip)[0] for b in batches])


def _signed(group: dict) -> str:
    margin = group.get("signed_margin95")
    return f"{group['signed']:+.2f}" + (f" ± {margin:.2f}" if margin is not None else "")


def _group_table(groups: dict) -> list[str]:
    """Markdown rows per group: signed error is predicted − true (negative: made younger)."""
    if not groups:
        return []
    lo, hi = ADULTS
    lines = [
        "By group (UTKFace's labels; signed error = predicted − true, negative makes people younger; "
        "± the 95 % margin of that mean):",
        "",
        f"| group | faces | MAE | signed | CS@5 | interval coverage | {lo}–{hi}: faces | {lo}–{hi}: MAE "
        f"| {lo}–{hi}: signed |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for key in groups:
        for value, g in groups[key].items():
            a = g.get("adults")
            adults = f"{a['count']} | {a['mae']:.2f} | {_signed(a)}" if a else "0 | – | –"
            lines.append(
                f"| {value} | {g['count']} | {g['mae']:.2f} | {_signed(g)} | {g['cs5']:.1%} "
                f"| {g['interval_coverage']:.1%} | {adults} |"
            )
    return [*lines, ""]


def _source_table(by_source: dict) -> list[str]:
    """Markdown rows per source of faces (UTKFace, AAF): each is chosen on and judged by itself."""
    if not by_source:
        return []
    lo, hi = ADULTS
    lines = [
        "By source:",
        "",
        f"| source | faces | MAE | CS@5 | 90 % interval holds | one mode | {lo}–{hi}: signed | MAE women / men |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, m in by_source.items():
        gender = m["groups"].get("gender", {})
        adults = [g["adults"] for g in m["groups"].get("ethnicity", {}).values() if "adults" in g]
        count = sum(a["count"] for a in adults)
        signed = sum(a["signed"] * a["count"] for a in adults) / count if count else float("nan")
        women, men = (gender.get(k, {}).get("mae", float("nan")) for k in ("female", "male"))
        lines.append(
            f"| {name} | {m['count']} | {m['mae']:.2f} | {m['cs5']:.1%} | {m['interval']['coverage']:.1%} "
            f"| {m['modes']['single_mode_share']:.1%} | {signed:+.2f} | {women:.2f} / {men:.2f} |"
        )
    return [*lines, ""]


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
        f"Distributions with a single mode (local maxima of at least 20 % of the peak): "
        f"{metrics['modes']['single_mode_share']:.1%}; {metrics['modes']['mean']:.1f} modes on average.",
        "",
        *_source_table(metrics.get("by_source", {})),
        *_group_table(metrics["groups"]),
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
        "![signed error by ethnicity and age band](signed_error_by_group.png)",
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
    flip: bool = False,
    runtime: str = "tensorflow",
    log=print,
) -> dict:
    model = AgeModel(model_dir, runtime=runtime)
    faces = read_manifest(manifest, split)[:limit]
    if not faces:
        raise ValueError(f"no faces in split {split!r} of {manifest}")
    probabilities = predict_faces(model, faces, data_root, flip=flip)
    true = np.array([f.age for f in faces], dtype=np.float64)
    groups = {
        "ethnicity": np.array([f.ethnicity for f in faces]),
        "gender": np.array([f.gender for f in faces]),
    }
    metrics = compute_metrics(true, probabilities, model.ages, groups=groups)
    metrics.update(split=split, manifest_sha256=file_sha256(manifest), tta="flip" if flip else "none")
    sources = np.array([f.source for f in faces])
    if len(set(sources)) > 1:  # each source's own metrics too: a model is chosen and judged on each
        metrics["by_source"] = {
            source: compute_metrics(
                true[sources == source],
                probabilities[sources == source],
                model.ages,
                groups={k: v[sources == source] for k, v in groups.items()},
            )
            for source in sorted(set(sources))
        }

    out_dir = out_dir or Path(model_dir) / "evaluation"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    pred = expected_ages(probabilities, model.ages)
    plot_predictions(true, pred, out_dir / "predicted_vs_true.png")
    plot_bands(metrics["mae_by_band"], out_dir / "error_by_band.png")
    plot_calibration(metrics["calibration"], out_dir / "calibration.png")
    plot_groups(metrics["groups"]["ethnicity"], out_dir / "signed_error_by_group.png")
    tta = ", flip test-time augmentation" if flip else ""
    write_report(metrics, out_dir, f"{model.card['name']} {model.card['version']} on the {split} split{tta}")
    if record:
        card = dict(model.card)
        card.setdefault("metrics", {})[split] = {
            **_card_metrics(metrics),
            **{source: _card_metrics(m) for source, m in metrics.get("by_source", {}).items()},
        }
        (Path(model_dir) / CARD).write_text(json.dumps(card, indent=2) + "\n")
    for source, m in [("all", metrics), *metrics.get("by_source", {}).items()]:
        log(
            f"{split} ({source}): {m['count']} faces, MAE {m['mae']:.3f}, CS@5 {m['cs5']:.3f}, "
            f"interval coverage {m['interval']['coverage']:.3f}"
        )
    log(f"report: {out_dir}")
    return metrics


def _card_metrics(metrics: dict) -> dict:
    """What a model card records of an evaluation (the full report stays in evaluation/)."""
    keys = ("count", "mae", "cs5", "rmse", "mean_predicted_std", "interval", "mae_by_band", "modes")
    return {k: metrics[k] for k in keys}
