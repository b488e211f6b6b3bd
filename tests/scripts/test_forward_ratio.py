"""scripts/forward_ratio.py, run as a user runs it, on the tiny exported model and a shipped one."""

from __future__ import annotations

import json
import subprocess
import sys

from harness.data import REPO


def run(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "scripts/forward_ratio.py", *args]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def test_the_first_model_is_the_unit(tiny_model_dir, tmp_path):
    out = tmp_path / "ratio.json"
    result = run(str(tiny_model_dir), str(tiny_model_dir), "--rounds", "20", "--json", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert [r["model"] for r in rows] == [str(tiny_model_dir)] * 2
    assert rows[0]["ratio_to_first"] == 1.0
    assert 0 < rows[1]["p10_ms"] <= rows[1]["median_ms"] and 0.2 < rows[1]["ratio_to_first"] < 5
    assert result.stdout.count(f"| {tiny_model_dir} |") == 2


def test_a_float_suffix_times_the_float_graph(tiny_model_dir, tmp_path):
    out = tmp_path / "ratio.json"
    result = run(f"{tiny_model_dir}:float", str(tiny_model_dir), "--rounds", "5", "--json", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    assert [r["model"] for r in json.loads(out.read_text())] == [f"{tiny_model_dir}:float", str(tiny_model_dir)]
    assert "unknown precision 'int4'" in run(f"{tiny_model_dir}:int4", "--rounds", "2").stderr


def test_models_of_different_input_sizes_are_refused(tiny_model_dir):
    result = run(str(tiny_model_dir), str(REPO / "models" / "dex-mobilenet_v2"), "--rounds", "2")
    assert result.returncode != 0 and "different input sizes" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_model_directory_is_one_clear_line(tmp_path):
    result = run(str(REPO / "models" / "dex-mobilenet_v2"), str(tmp_path / "absent"), "--rounds", "2")
    assert result.returncode != 0 and "does not exist" in result.stderr
    assert "Traceback" not in result.stderr
