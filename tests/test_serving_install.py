"""`pip install .` in a fresh virtual environment is the serving install: it answers the README's
CLI and Python examples with the shipped model, and has no TensorFlow, Keras or training code."""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import venv

import pytest

from harness.data import DATA, REPO


@pytest.fixture(scope="module")
def serving_venv(tmp_path_factory):
    root = tmp_path_factory.mktemp("serving") / "venv"
    venv.create(root, with_pip=True)
    python = root / "bin" / "python"
    done = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", str(REPO)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    size = subprocess.run(["du", "-sm", str(root)], capture_output=True, text=True).stdout.split()[0]
    print(f"serving install: {size} MB", file=sys.stderr)
    return root


def test_it_has_no_tensorflow_keras_or_training_code(serving_venv):
    for module in ("tensorflow", "keras", "model_training", "tf2onnx"):
        done = subprocess.run(
            [str(serving_venv / "bin" / "python"), "-c", f"import {module}"], capture_output=True, cwd="/"
        )
        assert done.returncode != 0, f"{module} is importable in the serving install"


def test_the_cli_answers_with_the_shipped_model(serving_venv):
    done = subprocess.run(
        [str(serving_venv / "bin" / "dex-age"), "predict", str(DATA / "test-images" / "face.jpg")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(io.StringIO(done.stdout)))
    assert len(rows) == 4 and all(0 < float(r["age"]) < 100 for r in rows)


def test_the_python_example_runs(serving_venv):
    code = (
        "from app.estimator import Estimator; import sys; "
        "answer = Estimator.from_dir('models/dex-age').answer(sys.argv[1]); "
        "print(len(answer['faces']), answer['model']['name'], 'tensorflow' in sys.modules)"
    )
    done = subprocess.run(
        [str(serving_venv / "bin" / "python"), "-c", code, str(DATA / "test-images" / "grace_hopper.bmp")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["1", "dex-age", "False"]
