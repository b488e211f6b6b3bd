"""PNG plots for training runs and evaluation reports (matplotlib, no display needed)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def plot_history(rows: list[dict], path: Path) -> None:
    """Loss and MAE per epoch over all stages, with a line where each stage begins."""
    if not rows:
        return
    x = np.arange(1, len(rows) + 1)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, key, title in ((axes[0], "loss", "cross-entropy"), (axes[1], "expected_age_mae", "MAE (years)")):
        for prefix, label in (("", "train"), ("val_", "validation")):
            values = [float(r[prefix + key]) if r.get(prefix + key) else np.nan for r in rows]
            ax.plot(x, values, marker="o", label=label)
        for i, row in enumerate(rows):
            if i == 0 or row["stage"] != rows[i - 1]["stage"]:
                ax.axvline(i + 0.5, color="grey", linestyle=":")
                ax.text(i + 0.6, ax.get_ylim()[1], row["stage"], va="top", fontsize=8, color="grey")
        ax.set_xlabel("epoch (all stages)")
        ax.set_title(title)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_predictions(true: np.ndarray, pred: np.ndarray, path: Path) -> None:
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    ax.scatter(true, pred, s=4, alpha=0.3)
    top = max(float(true.max()), float(pred.max())) + 2
    ax.plot([0, top], [0, top], color="black", linewidth=1)
    ax.set_xlabel("true age")
    ax.set_ylabel("predicted age (expected value)")
    ax.set_title("predicted vs true")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_bands(bands: list[dict], path: Path) -> None:
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.bar([b["band"] for b in bands], [b["mae"] for b in bands])
    for i, b in enumerate(bands):
        ax.text(i, b["mae"], f"{b['mae']:.1f}\nn={b['count']}", ha="center", va="bottom", fontsize=8)
    ax.set_xlabel("true age band")
    ax.set_ylabel("MAE (years)")
    ax.set_title("error by age band")
    ax.margins(y=0.2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_calibration(calibration: list[dict], path: Path) -> None:
    """Real error against predicted spread: a model honest about its uncertainty follows the line."""
    fig, ax = plt.subplots(figsize=(5.5, 5))
    std = [c["predicted_std"] for c in calibration]
    ax.plot(std, [c["rmse"] for c in calibration], marker="o", label="RMSE of expected age")
    ax.plot(std, [c["mae"] for c in calibration], marker="s", label="MAE of expected age")
    top = max(std + [c["rmse"] for c in calibration]) * 1.1
    ax.plot([0, top], [0, top], color="black", linewidth=1, label="RMSE = predicted std")
    ax.set_xlabel("mean predicted std (bin)")
    ax.set_ylabel("real error (years)")
    ax.set_title("calibration of the predicted spread")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_groups(groups: dict, path: Path) -> None:
    """Mean signed error (predicted − true) per group and age band, with its 95 % margin: bias
    shows as bars off zero by more than their whiskers."""
    bands = list(dict.fromkeys(b for g in groups.values() for b in g["bands"]))
    fig, ax = plt.subplots(figsize=(10, 4))
    width = 0.8 / max(len(groups), 1)
    x = np.arange(len(bands))
    for i, (name, g) in enumerate(groups.items()):
        cells = [g["bands"].get(b, {}) for b in bands]
        values = [c.get("signed", np.nan) for c in cells]
        margins = [c.get("signed_margin95") or 0.0 for c in cells]
        ax.bar(
            x + (i - (len(groups) - 1) / 2) * width,
            values,
            width,
            yerr=margins,
            capsize=2,
            label=f"{name} (n={g['count']})",
        )
    ax.axhline(0, color="black", linewidth=1)
    ax.set_xticks(x, bands)
    ax.set_xlabel("true age band")
    ax.set_ylabel("mean signed error (years)")
    ax.set_title("bias by group: predicted − true")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
