"""The `dex-age` command as the tests run it: the venv's own script, in a child process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

DEX_AGE = str(Path(sys.executable).parent / "dex-age")


def dex_age_predict(*args: str, model_dir: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    """`dex-age predict ARGS --model-dir DIR --runtime onnx`, its output captured."""
    command = [DEX_AGE, "predict", *args, "--model-dir", str(model_dir), "--runtime", "onnx"]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})
