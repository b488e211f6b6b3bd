"""tf.data input pipelines: manifest rows → augmented face crops and (class, age) targets.

Every crop goes through `model_training.crop`, the code the service uses: evaluation frames the
whole chip as `crop_whole` does, and training's random resized crop is `crop_square` on a
jittered square around the chip.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from model_training.config import Augment, Recipe
from model_training.crop import crop_square, crop_whole, read_rgb
from model_training.dataset import Face

AUTOTUNE = tf.data.AUTOTUNE


def _load(path: bytes, size: int, seed: int, augment: Augment | None) -> np.ndarray:
    image = read_rgb(path.decode())
    if augment is None:
        return crop_whole(image, size)
    rng = np.random.default_rng(seed)
    h, w = image.shape[:2]
    side = min(h, w) * rng.uniform(*augment.crop_scale)
    dx, dy = rng.uniform(-augment.crop_shift, augment.crop_shift, size=2) * min(h, w)
    return crop_square(image, w / 2 + dx, h / 2 + dy, side, size)


def _rotate(image: tf.Tensor, max_degrees: float) -> tf.Tensor:
    """Small random rotation about the centre, edges replicated like the crop's padding."""
    if max_degrees <= 0:
        return image

    def rotate(img: np.ndarray, angle: np.float32) -> np.ndarray:
        h, w = img.shape[:2]
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), float(angle), 1.0)
        return cv2.warpAffine(img, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    angle = tf.random.uniform([], -max_degrees, max_degrees)
    out = tf.numpy_function(rotate, [image, angle], tf.float32, stateful=True)
    return tf.ensure_shape(out, image.shape)


def make_dataset(
    faces: list[Face],
    data_root: Path,
    recipe: Recipe,
    training: bool,
    batch_size: int | None = None,
) -> tf.data.Dataset:
    """Batches of (float32 RGB 0..255 images, {"probabilities": class, "expected_age": age})."""
    size, augment = recipe.input_size, recipe.augment if training else None
    ages = np.clip([f.age for f in faces], recipe.min_age, recipe.max_age)
    paths = [str(Path(data_root) / f.path) for f in faces]
    ds = tf.data.Dataset.from_tensor_slices((paths, ages.astype("int32")))
    if training:
        ds = ds.shuffle(len(faces), seed=recipe.seed, reshuffle_each_iteration=True)

    def load(path, age):
        seed = tf.random.uniform([], 0, 2**31 - 1, dtype=tf.int64)
        image = tf.numpy_function(
            lambda p, s: _load(p, size, int(s), augment), [path, seed], tf.uint8, stateful=training
        )
        image = tf.cast(tf.ensure_shape(image, (size, size, 3)), tf.float32)
        if augment is not None:
            if augment.flip:
                image = tf.image.random_flip_left_right(image)
            image = _rotate(image, augment.rotation_deg)
            if augment.brightness > 0:
                image = image + tf.random.uniform([], -augment.brightness, augment.brightness) * 255.0
            if augment.contrast > 0:
                image = tf.image.random_contrast(image, 1 - augment.contrast, 1 + augment.contrast)
            image = tf.clip_by_value(image, 0.0, 255.0)
        target = {"probabilities": age - recipe.min_age, "expected_age": tf.cast(age, tf.float32)}
        return image, target

    ds = ds.map(load, num_parallel_calls=AUTOTUNE, deterministic=not training)
    return ds.batch(batch_size or recipe.batch_size).prefetch(AUTOTUNE)
