"""scripts/throughput_ratio.py, run as a user runs it: real services on the tiny model, side by side."""

from __future__ import annotations

import subprocess
import sys

from harness.data import REPO


def test_two_configurations_are_loaded_in_rounds_and_the_first_is_the_unit(tiny_model_dir):
    command = [sys.executable, "scripts/throughput_ratio.py", f"{tiny_model_dir}:float", str(tiny_model_dir)]
    result = subprocess.run(
        [*command, "--rounds", "2", "--requests", "8"], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith(f"| {tiny_model_dir}")]
    assert len(rows) == 2 and rows[0].endswith("| 1.00 |")
    assert all(len(row.split("|")[2].split("·")) == 2 for row in rows)  # one figure a round
