"""EfficientNet-Lite0 (model_training.efficientnet_lite): the carried ImageNet weights, checked."""

from __future__ import annotations

import numpy as np
import pytest

from model_training import efficientnet_lite
from model_training.crop import crop_whole, read_rgb
from model_training.efficientnet_lite import EfficientNetLite0
from model_training.model import build_backbone


def test_the_carried_weights_load_and_tell_photos_apart(test_images):
    """Real ImageNet features: a cat and a face are far apart, a face and its mirror close."""
    backbone = build_backbone("efficientnet_lite0", "imagenet", 224)
    assert backbone.output.shape[-1] == 1280
    cat, face = (crop_whole(read_rgb(str(test_images / n)), 224) for n in ("cat.bmp", "grace_hopper.bmp"))
    x = np.stack([cat, face, face[:, ::-1]]).astype("float32") / 127.5 - 1.0
    features = backbone.predict(x, verbose=0)
    assert np.isfinite(features).all() and features.std() > 0.01
    assert np.linalg.norm(features[1] - features[2]) < 0.5 * np.linalg.norm(features[0] - features[1])
    # Grace Hopper's first features as the conversion left them (checked then against torch to 1e-6,
    # model_training/weights/README.md): the architecture and the file have not drifted since
    np.testing.assert_allclose(features[1][:6], [0.53392, 0.0, 0.11284, 0.03406, 0.0, 0.00527], atol=2e-4)


def test_a_damaged_weights_file_is_refused(tmp_path, monkeypatch):
    damaged = tmp_path / efficientnet_lite.IMAGENET_WEIGHTS.name
    data = bytearray(efficientnet_lite.IMAGENET_WEIGHTS.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(efficientnet_lite, "IMAGENET_WEIGHTS", damaged)
    with pytest.raises(RuntimeError, match="does not match its sha256"):
        EfficientNetLite0(include_top=False, weights="imagenet", pooling="avg")
