"""Compare training runs on the validation split: accuracy, bias by group, and distribution shape.

For each run folder: its best weights, the validation faces of its manifest framed as training
frames them, a softmax temperature fitted on them (as export does), then MAE, CS@5, the share of
single-mode distributions, the mean signed error of adults 30–69 per ethnicity and the MAE gap
between women and men; with several sources (UTKFace, AAF), each source's MAE, interval coverage,
adults' signed error and gender gap, and the mean of the sources' MAEs, which runs are chosen by.
Validation only: the test split is read once per shipped candidate, by `evaluate`.

--ensemble also scores the mean of the runs' distributions (one forward per run), --ensembles the
means of the subsets it names (e.g. `1+2+3 2+3`: runs by their place on the command line, each run
predicted once); --soup the
model whose weights are the mean of the runs' weights (a "model soup": one forward; for runs of
one architecture fine-tuned from the same weights, e.g. the stages of one run).

A model directory (e.g. models/dex-mobilenet_v2) is a run too: its SavedModel's weights with the
recipe its model.json records. `--data RECIPE` scores every run on that recipe's validation faces
(its manifest and data folder) instead of each run's own: e.g. a model trained on UTKFace's chips
on the aligned faces of both sources.

Usage: python scripts/compare_runs.py runs/A runs/B/stage-NAME.weights.h5 models/M ...
           [--limit N] [--json FILE] [--smooth SIGMA PER_YEAR]... [--ensemble] [--ensembles 1+2 ...] [--soup]
           [--data RECIPE]

With two sources the per-source table ends with the worst bias that the shipping rules weigh
(docs/experiments.md, Model 3.1): the largest of |AAF adults' mean signed error| / 1.5 and
|each UTKFace ethnicity's adults' mean signed error| / 2.0, over ethnicities with at least 50
validation adults.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from app.model.distribution import calibrated, fit_temperature
from app.model.model_dir import CARD
from model_training.config import Recipe, load_recipe
from model_training.dataset import ETHNICITIES, Face
from model_training.evaluate import compute_metrics
from model_training.export import trained_model, validation_probabilities
from model_training.model import average_weights, build_model
from model_training.run_dir import load_config, locate

# the worst bias (Model 3.1's definition): each aim's width, and the fewest adults an ethnicity needs
BIAS_AIMS = {"aaf": 1.5, "ethnicity": 2.0}
BIAS_MIN_ADULTS = 50


def predict(
    runs: list[Path], limit: int | None, data: Recipe | None = None
) -> tuple[str, Recipe, list[Face], np.ndarray]:
    """(label, recipe, validation faces, raw probabilities) of one run or model directory, or of
    the soup of several runs (their mean weights, with the first run's recipe); on `data`'s
    validation faces if given."""
    if len(runs) == 1:
        label, recipe, model = trained_model(runs[0])
    else:
        if any((run / CARD).is_file() for run in runs):
            raise ValueError("a model directory cannot be part of a soup")
        located = [locate(run) for run in runs]
        recipe = load_config(located[0][0])
        model = build_model(recipe, weights="none")
        average_weights(model, [weights for _, weights, _ in located])
        label = "soup of " + " + ".join(label for *_, label in located)
    if data is not None:
        recipe = replace(recipe, manifest=data.manifest, data_root=data.data_root)
    return label, recipe, *validation_probabilities(model, recipe, limit)


def score(
    label: str, recipe: Recipe, faces: list[Face], raw: np.ndarray, smooths: list[tuple[float, float] | None]
) -> list[dict]:
    """Metrics after a fitted temperature: with the recipe's output smoothing (None), and with each
    (sigma, per_year) given instead."""
    true = np.array([f.age for f in faces], dtype=np.float64)
    ages = np.array(recipe.ages, dtype=np.float64)
    groups = {
        "ethnicity": np.array([f.ethnicity for f in faces]),
        "gender": np.array([f.gender for f in faces]),
        "source": np.array([f.source for f in faces]),
        "source_gender": np.array([f"{f.source} {f.gender}" for f in faces]),
    }
    results = []
    for smooth in smooths:
        variant = recipe if smooth is None else replace(recipe, smooth_sigma=smooth[0], smooth_sigma_per_year=smooth[1])
        kernel = variant.smoothing_kernel()  # as export applies it
        temperature = fit_temperature(raw, true, ages, kernel=kernel)
        metrics = compute_metrics(true, calibrated(raw, temperature, kernel), ages, groups=groups)
        name = label + (f" (smoothed {smooth[0]:g} + {smooth[1]:g}·age)" if smooth else "")
        results.append({"run": name, "temperature": temperature, **metrics})
    return results


def row(m: dict) -> str:
    eth, gender = m["groups"]["ethnicity"], m["groups"]["gender"]
    adults = [f"{eth[e]['adults']['signed']:+.2f}" if "adults" in eth.get(e, {}) else "–" for e in ETHNICITIES]
    gap = gender["female"]["mae"] - gender["male"]["mae"]
    return (
        f"| {m['run']} | {m['mae']:.3f} | {m['cs5']:.1%} | {m['modes']['single_mode_share']:.1%} "
        f"| {m['modes']['mean']:.1f} | " + " | ".join(adults) + f" | {gap:+.2f} | {m['temperature']:.2f} |"
    )


def worst_bias(m: dict) -> float:
    """The largest bias of adults 30–69 for its aim's width: AAF's (the data set states one
    ethnicity for all its faces) and each UTKFace ethnicity's with enough adults to measure."""
    ratios = [
        abs(g["adults"]["signed"]) / BIAS_AIMS["ethnicity"]
        for name, g in m["groups"]["ethnicity"].items()
        if name in ETHNICITIES and g.get("adults", {}).get("count", 0) >= BIAS_MIN_ADULTS
    ]
    aaf = m["groups"]["source"].get("aaf", {}).get("adults")
    if aaf:
        ratios.append(abs(aaf["signed"]) / BIAS_AIMS["aaf"])
    return max(ratios, default=float("nan"))


def source_row(m: dict) -> str:
    """Per source: MAE, interval coverage, adults' signed error, MAE women − men; the sources' mean
    MAE and the worst bias."""
    sources, by_gender = m["groups"]["source"], m["groups"]["source_gender"]
    cells = []
    for name, s in sources.items():
        gap = by_gender[f"{name} female"]["mae"] - by_gender[f"{name} male"]["mae"]
        adults = s.get("adults", {}).get("signed", float("nan"))
        cells.append(f"{name} {s['mae']:.3f} · {s['interval_coverage']:.1%} · {adults:+.2f} · {gap:+.2f}")
    mean = np.mean([s["mae"] for s in sources.values()])
    return f"| {m['run']} | {mean:.3f} | " + " | ".join(cells) + f" | {worst_bias(m):.2f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--limit", type=int, help="validation faces (default: all)")
    parser.add_argument("--json", type=Path, help="also write every metric here")
    parser.add_argument("--ensemble", action="store_true", help="also score the mean of the runs' distributions")
    parser.add_argument(
        "--ensembles", nargs="+", default=[], metavar="I+J",
        help="also score the mean of these runs' distributions (their places on the command line, from 1)",
    )  # fmt: skip
    parser.add_argument("--soup", action="store_true", help="also score the model of the runs' mean weights")
    parser.add_argument("--data", help="score on this recipe's validation faces (its manifest and data folder)")
    parser.add_argument(
        "--smooth", type=float, nargs=2, action="append", metavar=("SIGMA", "PER_YEAR"),
        help="also score each run with this output smoothing (repeatable; recipe keys smooth_sigma*)",
    )  # fmt: skip
    args = parser.parse_args()
    variants = [None, *(tuple(s) for s in args.smooth or [])]
    data = load_recipe(args.data) if args.data else None
    subsets = [list(range(len(args.runs)))] if args.ensemble else []
    try:
        subsets += [[int(i) - 1 for i in spec.split("+")] for spec in args.ensembles]
    except ValueError:
        parser.error("--ensembles takes runs' places joined by +, e.g. 1+2")
    if any(not 0 <= i < len(args.runs) for subset in subsets for i in subset):
        parser.error(f"--ensembles names a place that is not among the {len(args.runs)} runs")
    predictions = [predict([run], args.limit, data) for run in args.runs]
    results = [m for p in predictions for m in score(*p, variants)]
    for subset in subsets:  # the mean of the runs' raw distributions, scored with the first one's recipe
        members = [predictions[i] for i in subset]
        _, recipe, faces, _ = members[0]
        if any([f.path for f in p[2]] != [f.path for f in faces] for p in members):
            parser.error("an ensemble needs runs on the same validation faces")
        label = "ensemble of " + " + ".join(p[0] for p in members)
        results += score(label, recipe, faces, np.mean([p[3] for p in members], axis=0), variants)
    if args.soup:
        results += score(*predict(args.runs, args.limit, data), variants)
    print(
        "| run | MAE | CS@5 | single mode | modes | "
        + " | ".join(f"30–69 signed: {e}" for e in ETHNICITIES)
        + " | MAE female − male | temperature |"
    )
    print("|---|" + "---:|" * (6 + len(ETHNICITIES)))
    for m in results:
        print(row(m))
    if len(results[0]["groups"]["source"]) > 1:
        print("\n| run | mean of the sources' MAE | per source: MAE · 90 % interval coverage · adults 30–69 signed "
              "· MAE women − men | worst bias |\n|---|---:|---|---|---:|")  # fmt: skip
        for m in results:
            print(source_row(m))
    if args.json:
        for m in results:
            m["worst_bias"] = worst_bias(m)
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
