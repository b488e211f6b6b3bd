"""Shared fixtures: real data from ../shared/data (or $DEX_DATA) and one tiny trained model.

Tests that need real faces fail, never skip, when the data is missing: CI must not pass on
an empty machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from harness.data import CROPS, DATA, MANIFEST
from harness.loadgen import Service, start_service, stop, wait_ready
from model_training.config import Stage, load_recipe

TINY_SIZE = 64


def _require(path: Path) -> Path:
    if not path.exists():
        pytest.fail(f"test data missing: {path} (set DEX_DATA to the folder holding UTKFace/ and test-images/)")
    return path


@pytest.fixture(scope="session")
def utkface_dir() -> Path:
    return _require(DATA / "UTKFace")


@pytest.fixture(scope="session")
def test_images() -> Path:
    return _require(DATA / "test-images")


@pytest.fixture(scope="session")
def weights_file() -> Path:
    return _require(DATA.parent / "weights" / "mobilenet_v2_imagenet_torchvision_notop.weights.h5")


@pytest.fixture(scope="session")
def tiny_recipe(utkface_dir: Path, weights_file: Path):
    """The shipped recipe shrunk to a 64 px input and one short epoch per stage."""
    return replace(
        load_recipe("mobilenet_v2"),
        name="tiny",
        weights=str(weights_file),
        input_size=TINY_SIZE,
        batch_size=16,
        manifest=str(MANIFEST),
        data_root=str(utkface_dir),
        stages=(Stage("frozen", "head", 1, 1e-3, 1), Stage("finetune", "all", 1, 1e-4, 1)),
    )


@pytest.fixture(scope="session")
def tiny_run(tiny_recipe, tmp_path_factory) -> Path:
    """A real (short) training run on 64 real UTKFace faces."""
    from model_training.train import train

    run_dir = tmp_path_factory.mktemp("run") / "tiny"
    train(tiny_recipe, run_dir, limit=64)
    return run_dir


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_run: Path, tmp_path_factory) -> Path:
    """A model directory exported by model_training from the tiny run."""
    from model_training import calibrate
    from model_training.export import export

    crops = dict(calibrate.load(path) for path in CROPS)
    out = tmp_path_factory.mktemp("models") / "tiny"
    export(tiny_run, out, crops, version="0.0.0-test", calibration_faces=200, int8_faces=200)
    return out


@pytest.fixture(scope="session")
def service(tiny_model_dir: Path, tmp_path_factory) -> Iterator[Service]:
    """A real service: `python -m app` under uvicorn on a loopback port, serving the tiny model."""
    svc = start_service(tiny_model_dir, tmp_path_factory.mktemp("logs") / "service.log")
    try:
        wait_ready(svc)
        yield svc
    finally:
        stop(svc)


@pytest.fixture(scope="module")
def photos(test_images):
    """The test photos (face.jpg, grace_hopper.bmp, cat.bmp) as RGB arrays, by file name."""
    from app import imaging

    return {p.name: imaging.decode(p.read_bytes(), 10**8) for p in sorted(test_images.iterdir()) if p.suffix != ".md"}
