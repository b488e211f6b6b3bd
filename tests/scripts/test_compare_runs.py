"""scripts/compare_runs.py, run as a user runs it, on the tiny training run."""

from __future__ import annotations

import json
import subprocess
import sys

from harness.data import REPO


def test_compare_runs_scores_a_run_a_stage_and_their_ensemble(tiny_run, tmp_path):
    out = tmp_path / "compare.json"
    stage = tiny_run / "stage-finetune.weights.h5"  # the run's best as the last stage ended
    command = [sys.executable, "scripts/compare_runs.py", str(tiny_run), str(stage), "--limit", "24"]
    command += ["--ensemble", "--ensembles", "2+1", "2", "--soup"]
    result = subprocess.run([*command, "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "MAE" not in line]
    assert len(rows) == 6, result.stdout
    results = json.loads(out.read_text())
    assert [r["run"] for r in results] == [
        "tiny",
        "tiny/stage-finetune.weights",
        "ensemble of tiny + tiny/stage-finetune.weights",
        "ensemble of tiny/stage-finetune.weights + tiny",
        "ensemble of tiny/stage-finetune.weights",
        "soup of tiny + tiny/stage-finetune.weights",
    ]
    assert 0 < results[0]["mae"] < 100 and len({r["mae"] for r in results}) == 1  # one network's weights, six ways
    assert set(results[0]["groups"]) == {"ethnicity", "gender", "source", "source_gender"}


def test_compare_runs_refuses_an_ensemble_of_runs_it_was_not_given(tiny_run):
    command = [sys.executable, "scripts/compare_runs.py", str(tiny_run), "--ensembles"]
    for spec in ("1+2", "0", "one"):
        result = subprocess.run([*command, spec], cwd=REPO, capture_output=True, text=True, timeout=120)
        assert result.returncode == 2 and "--ensembles" in result.stderr, (spec, result.stderr[-500:])


def test_compare_runs_scores_a_model_directory_on_another_recipes_two_sources(tiny_model_dir, tiny_recipe, tmp_path):
    """A model directory as a candidate, scored with --data on a recipe whose validation faces come
    from two sources (here UTKFace faces, a third relabelled as a second source): each source's row."""
    from dataclasses import replace

    from model_training.dataset import read_manifest, write_manifest

    faces = read_manifest(tiny_recipe.manifest, "val")[::40][:30]  # the manifest runs by name: spread its ages
    write_manifest([replace(f, source="aaf" if i % 3 else "utkface") for i, f in enumerate(faces)], tmp_path / "m.csv")
    recipe = tmp_path / "data.json"
    recipe.write_text(replace(tiny_recipe, manifest=str(tmp_path / "m.csv")).dumps())
    command = [sys.executable, "scripts/compare_runs.py", str(tiny_model_dir), "--data", str(recipe)]
    result = subprocess.run([*command, "--json", str(tmp_path / "c.json")], cwd=REPO, capture_output=True, text=True,
                            timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    (row,) = json.loads((tmp_path / "c.json").read_text())
    assert row["run"] == "tiny 0.0.0-test" and row["count"] == 30
    assert {k: v["count"] for k, v in row["groups"]["source"].items()} == {"aaf": 20, "utkface": 10}
    source_rows = [
        line for line in result.stdout.splitlines() if line.startswith("| tiny 0.0.0-test") and "aaf " in line
    ]
    assert len(source_rows) == 1 and "utkface " in source_rows[0]
    # the worst bias: AAF's adults against ±1.5 (no UTKFace ethnicity has the 50 adults it takes here)
    aaf_adults = row["groups"]["source"]["aaf"]["adults"]["signed"]
    assert row["worst_bias"] == abs(aaf_adults) / 1.5
    assert source_rows[0].endswith(f" | {abs(aaf_adults) / 1.5:.2f} |")
