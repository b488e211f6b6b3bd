"""How to frame our aligned crop for face-api.js's age network, and how wide its errors are.

face-api frames a face by the box of its 68 landmarks; our crop is the YuNet template's, looser.
This scores the port (model_training.faceapi) on the validation faces of both sources, for a few
central squares of the crop, and prints per source the MAE, the mean signed error and the RMS
error. The framing with the lowest mean of the sources' MAEs is the one to keep in
faceapi.FRAMING; the pooled RMS error there is the σ of the Gaussian it teaches with
(`faceapi_sigma`). Validation only: test splits are never read here.

    python scripts/faceapi_framing.py [--limit N] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from app.faces.crop import read_rgb
from model_training.aligned import MANIFEST
from model_training.dataset import read_manifest
from model_training.faceapi import build_age_net, faceapi_input

SIDES = (0.6, 0.7, 0.8, 0.9, 1.0)
SHIFTS = (0.0, 0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--manifest", type=Path, default=MANIFEST)
    parser.add_argument("--data-root", type=Path, default=MANIFEST.parent)
    parser.add_argument("--limit", type=int, default=None, help="at most this many faces per source")
    parser.add_argument("--json", type=Path, default=None, help="also write the table here")
    args = parser.parse_args()
    faces = read_manifest(args.manifest, "val")
    by_source = {s: [f for f in faces if f.source == s][: args.limit] for s in sorted({f.source for f in faces})}
    net = build_age_net()
    rows = []
    crops = {s: [read_rgb(str(args.data_root / f.path)) for f in fs] for s, fs in by_source.items()}
    for side in SIDES:
        for shift in SHIFTS:
            framing = {"side": side, "shift_y": shift}
            row = {"framing": framing}
            errors = []
            for source, fs in by_source.items():
                small = np.stack([faceapi_input(c, framing) for c in crops[source]]).astype(np.float32)
                err = net.predict(small, batch_size=128, verbose=0) - np.array([f.age for f in fs])
                errors.append(err)
                row[source] = {
                    "faces": len(fs),
                    "mae": float(np.abs(err).mean()),
                    "signed": float(err.mean()),
                    "rms": float(np.sqrt((err**2).mean())),
                }
            pooled = np.concatenate(errors)
            row["mean_mae"] = float(np.mean([row[s]["mae"] for s in by_source]))
            row["pooled_rms"] = float(np.sqrt((pooled**2).mean()))
            rows.append(row)
            cells = "  ".join(
                f"{s} {row[s]['mae']:.2f} ({row[s]['signed']:+.2f}, rms {row[s]['rms']:.2f})" for s in by_source
            )
            print(
                f"side {side:.2f} shift {shift:.2f}: {cells}  mean {row['mean_mae']:.3f}  rms {row['pooled_rms']:.2f}"
            )
    best = min(rows, key=lambda r: r["mean_mae"])
    print(f"best: {best['framing']} (mean MAE {best['mean_mae']:.3f}); sigma = pooled RMS {best['pooled_rms']:.2f}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "best": best}, indent=2) + "\n")


if __name__ == "__main__":
    main()
