"""Offline half of dex-age: UTKFace → manifest → DEX training → evaluation → model directory.

The modules ``crop``, ``detect``, ``distribution`` and ``model_dir`` hold no TensorFlow imports at
module level and are shared with the serving app, so that training and serving agree.
"""
