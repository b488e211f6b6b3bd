"""scripts/compare_runs.py, run as a user runs it, on the tiny training run."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO


def test_compare_runs_scores_a_run_a_stage_and_their_ensemble(tiny_run, tmp_path):
    out = tmp_path / "compare.json"
    stage = tiny_run / "stage-finetune.weights.h5"  # the run's best as the last stage ended
    command = [sys.executable, "scripts/compare_runs.py", str(tiny_run), str(stage), "--limit", "24", "--ensemble"]
    result = subprocess.run([*command, "--json", str(out)], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ") and "MAE" not in line]
    assert len(rows) == 3, result.stdout
    results = json.loads(out.read_text())
    assert [r["run"] for r in results] == [
        "tiny",
        "tiny/stage-finetune.weights",
        "ensemble of tiny + tiny/stage-finetune.weights",
    ]
    run, same_weights, ensemble = results
    assert 0 < run["mae"] < 100 and run["mae"] == same_weights["mae"] == ensemble["mae"]
    assert set(run["groups"]) == {"ethnicity", "gender"}
