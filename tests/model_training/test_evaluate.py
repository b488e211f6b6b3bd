"""Evaluation (model_training.evaluate): metrics, report and plots, per source."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest

from harness.data import MANIFEST
from model_training.dataset import read_manifest
from model_training.evaluate import evaluate


def test_evaluate_writes_metrics_report_and_plots(tiny_model_dir, utkface_dir, tmp_path):
    metrics = evaluate(tiny_model_dir, MANIFEST, utkface_dir, "test", tmp_path, limit=40, log=lambda m: None)
    for name in (
        "metrics.json",
        "report.md",
        "predicted_vs_true.png",
        "error_by_band.png",
        "calibration.png",
        "signed_error_by_group.png",
    ):
        assert (tmp_path / name).is_file(), name
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["count"] == 40 and 0 < saved["mae"] < 100 and 0 <= saved["cs5"] <= 1
    assert saved["mean_predicted_std"] > 0
    assert sum(b["count"] for b in saved["mae_by_band"]) == 40
    assert metrics["mae"] == saved["mae"]
    assert 0 <= saved["modes"]["single_mode_share"] <= 1
    assert sum(g["count"] for g in saved["groups"]["ethnicity"].values()) == 40
    assert set(saved["groups"]["gender"]) <= {"male", "female", "unknown"}
    assert "| White |" in (tmp_path / "report.md").read_text()


def test_evaluate_on_two_sources_reports_and_records_each(tiny_model_dir, utkface_dir, tmp_path):
    """A manifest of two sources (here UTKFace faces relabelled as a second source): each source's
    metrics in metrics.json, report.md and the card's metrics.SPLIT.SOURCE."""
    import shutil

    from model_training.dataset import write_manifest

    faces = read_manifest(MANIFEST, "test")[:30]
    faces = [replace(f, source="aaf" if i % 3 == 0 else "utkface") for i, f in enumerate(faces)]
    write_manifest(faces, tmp_path / "two.csv")
    model_dir = tmp_path / "model"
    shutil.copytree(tiny_model_dir, model_dir)
    metrics = evaluate(model_dir, tmp_path / "two.csv", utkface_dir, "test", tmp_path / "ev", record=True, log=print)
    assert {k: v["count"] for k, v in metrics["by_source"].items()} == {"aaf": 10, "utkface": 20}
    both = np.array([metrics["by_source"][s]["mae"] for s in ("aaf", "utkface")])
    assert metrics["mae"] == pytest.approx((both * [10, 20]).sum() / 30)
    card = json.loads((model_dir / "model.json").read_text())
    assert card["metrics"]["test"]["aaf"]["count"] == 10 and card["metrics"]["test"]["count"] == 30
    report = (tmp_path / "ev" / "report.md").read_text()
    assert "| aaf | 10 |" in report and "| utkface | 20 |" in report
