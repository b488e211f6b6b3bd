"""The port of face-api.js's age network holds to the Node package's own answers."""

import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from model_training import faceapi

REFERENCE = Path(__file__).parents[1] / "data" / "faceapi"


@pytest.fixture(scope="module")
def net():
    return faceapi.build_age_net()


def test_port_matches_the_node_package_on_real_faces(net):
    record = json.loads((REFERENCE / "reference.json").read_text())
    names = sorted(record["ages"])
    assert len(names) >= 5  # the faces of ../shared/data/test-images
    inputs = np.stack([cv2.cvtColor(cv2.imread(str(REFERENCE / n)), cv2.COLOR_BGR2RGB) for n in names])
    ages = net.predict(inputs.astype(np.float32), verbose=0)
    np.testing.assert_allclose(ages, [record["ages"][n] for n in names], atol=1e-3)
    assert len(set(np.round(ages).tolist())) > 1  # the faces get different ages: not a constant


def test_weights_are_checked_by_sha256(tmp_path):
    for name in faceapi.SHA256:
        shutil.copy(faceapi.WEIGHTS_DIR / name, tmp_path / name)
    data = bytearray((tmp_path / faceapi.BINARY).read_bytes())
    data[100] ^= 1
    (tmp_path / faceapi.BINARY).write_bytes(bytes(data))
    with pytest.raises(ValueError, match="sha256"):
        faceapi.read_weights(tmp_path)
    (tmp_path / faceapi.BINARY).unlink()
    with pytest.raises(FileNotFoundError, match="npm pack"):
        faceapi.read_weights(tmp_path)


def test_dequantized_weights_have_the_manifest_shapes():
    weights = faceapi.read_weights()
    assert weights["entry_flow/conv_in/filters"].shape == (3, 3, 3, 32)
    assert weights["fc/age/weights"].shape == (512, 1)
    assert all(np.isfinite(w).all() for w in weights.values())


def test_input_frames_the_centre_of_the_aligned_crop():
    crop = np.zeros((224, 224, 3), np.uint8)
    crop[:, 112:] = 255  # right half white
    small = faceapi.faceapi_input(crop, {"side": 0.5, "shift_y": 0.0})
    assert small.shape == (112, 112, 3)
    assert small[:, :50].max() == 0 and small[:, 62:].min() == 255
