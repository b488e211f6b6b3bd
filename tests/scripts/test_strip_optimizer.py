"""scripts/strip_optimizer.py, run as a user runs it, on the tiny training run's weights."""

from __future__ import annotations

import subprocess
import sys

import h5py
import numpy as np

from harness.data import REPO
from model_training.model import build_model, warm_start
from model_training.run_dir import load_config


def test_strip_keeps_every_weight_and_drops_the_optimizer(tiny_run, tmp_path):
    source = tiny_run / "best.weights.h5"
    target = tmp_path / "checkpoint" / "best.weights.h5"
    command = [sys.executable, "scripts/strip_optimizer.py", str(source), str(target)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    with h5py.File(source, "r") as src, h5py.File(target, "r") as dst:
        assert "optimizer" in src and "optimizer" not in dst
    assert target.stat().st_size < source.stat().st_size
    assert list(target.parent.iterdir()) == [target]  # no temporary file left behind

    recipe = load_config(tiny_run)
    from_source, from_target = build_model(recipe), build_model(recipe)
    warm_start(from_source, source)
    warm_start(from_target, target)
    assert len(from_target.weights) > 100
    for a, b in zip(from_source.weights, from_target.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_strip_refuses_a_missing_source_and_writes_nothing(tmp_path):
    target = tmp_path / "best.weights.h5"
    command = [sys.executable, "scripts/strip_optimizer.py", str(tmp_path / "absent.weights.h5"), str(target)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert list(tmp_path.iterdir()) == []
