"""Copy a Keras `.weights.h5` without its optimizer's state, for checkpoints/.

A run's `best.weights.h5` also holds Adam's two moments of every weight (three times the file);
the next stage starts a fresh optimizer anyway (checkpoints/README.md), so only the weights travel.
The copy is read back and compared array by array before it replaces anything.

    python scripts/strip_optimizer.py runs/dex-efficientnet_lite2/best.weights.h5 \
        checkpoints/dex-efficientnet_lite2/best.weights.h5
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import h5py
import numpy as np

OPTIMIZER = "optimizer"


def arrays(group: h5py.Group, skip: str | None = None) -> dict[str, np.ndarray]:
    """Every dataset under `group` by its path, leaving out the top-level member `skip`."""
    found: dict[str, np.ndarray] = {}

    def visit(name: str, item: object) -> None:
        if isinstance(item, h5py.Dataset) and name.split("/")[0] != skip:
            found[name] = item[()]

    group.visititems(visit)
    return found


def strip(source: Path, target: Path) -> int:
    """Write `source` without its optimizer to `target`; the number of weight arrays kept."""
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(suffix=".weights.h5", dir=target.parent)
    os.close(handle)
    try:
        with h5py.File(source, "r") as src, h5py.File(tmp, "w") as dst:
            for key, value in src.attrs.items():
                dst.attrs[key] = value
            for key in src:
                if key != OPTIMIZER:
                    src.copy(src[key], dst, name=key)
            expected = arrays(src, skip=OPTIMIZER)
        with h5py.File(tmp, "r") as copy:
            kept = arrays(copy)
            if OPTIMIZER in copy:
                raise RuntimeError("the copy still holds an optimizer")
        if kept.keys() != expected.keys() or any(not np.array_equal(kept[k], expected[k]) for k in kept):
            raise RuntimeError(f"the copy of {source} differs from it")
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return len(kept)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path)
    args = parser.parse_args()
    count = strip(args.source, args.target)
    sizes = f"{args.target.stat().st_size:,} bytes (from {args.source.stat().st_size:,})"
    print(f"{args.target}: {count} weight arrays, {sizes}")


if __name__ == "__main__":
    main()
