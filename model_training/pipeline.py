"""tf.data input pipelines: manifest rows → augmented face crops and (class, age) targets.

Every crop goes through `app.faces.crop`, the code the service uses: evaluation frames the
whole chip as `crop_whole` does, and training's random resized crop is `crop_square` on a
jittered square around the chip.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import tensorflow as tf

from app.faces.crop import crop_square, crop_whole, read_rgb
from model_training.config import BALANCED_BY, Augment, Recipe
from model_training.dataset import AAF_ETHNICITY, ADULTS, BANDS, ETHNICITIES, GENDERS, Face

AUTOTUNE = tf.data.AUTOTUNE


def _load(path: bytes, size: int, seed: int, augment: Augment | None) -> np.ndarray:
    image = read_rgb(path.decode())
    if augment is None:
        return crop_whole(image, size)
    return random_crop(image, np.random.default_rng(seed), augment, size)


def random_crop(image: np.ndarray, rng: np.random.Generator, augment: Augment, size: int) -> np.ndarray:
    """Training's random resized square crop around the chip's centre, then `degrade`."""
    h, w = image.shape[:2]
    side = min(h, w) * rng.uniform(*augment.crop_scale)
    dx, dy = rng.uniform(-augment.crop_shift, augment.crop_shift, size=2) * min(h, w)
    return degrade(crop_square(image, w / 2 + dx, h / 2 + dy, side, size), rng, augment)


def degrade(image: np.ndarray, rng: np.random.Generator, augment: Augment) -> np.ndarray:
    """What other cameras do to a face, each with its probability: fewer pixels, blur, JPEG."""
    size = image.shape[0]
    if rng.random() < augment.downscale_p:
        small = max(8, round(size * rng.uniform(augment.downscale_min, 1.0)))
        image = cv2.resize(cv2.resize(image, (small, small), interpolation=cv2.INTER_AREA), (size, size))
    if rng.random() < augment.blur_p:
        image = cv2.GaussianBlur(image, (0, 0), rng.uniform(0.3, augment.blur_sigma))
    if rng.random() < augment.jpeg_p:
        quality = int(rng.integers(augment.jpeg_quality[0], augment.jpeg_quality[1] + 1))
        data = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])[1]
        image = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    return image


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


def label_distributions(recipe: Recipe) -> np.ndarray:
    """[K, K]: row a is the training target for true age ages[a] — one-hot for "ce", a discretised
    Gaussian of σ = ldl_sigma + ldl_sigma_per_year · age for "ldl"."""
    ages = np.array(recipe.ages, dtype=np.float64)
    if recipe.loss == "ce":
        return np.eye(len(ages), dtype=np.float32)
    sigma = recipe.ldl_sigma + recipe.ldl_sigma_per_year * ages[:, None]
    rows = np.exp(-0.5 * ((ages[None, :] - ages[:, None]) / sigma) ** 2)
    return (rows / rows.sum(axis=1, keepdims=True)).astype(np.float32)


def balanced_weights(faces: list[Face], cap: float, by: tuple[str, ...] = ("ethnicity",)) -> np.ndarray:
    """Sampling probabilities that even out the cells of the `by` fields × age band: each cell
    would get the same share, but no face is drawn more than `cap` times (nor less than 1/cap
    times) as often as in plain sampling, so a cell of a few faces does not repeat them hundreds
    of times."""
    band = [next(name for lo, hi, name in BANDS if lo <= f.age <= hi) for f in faces]
    cells = [(*(getattr(f, field) for field in by), b) for f, b in zip(faces, band, strict=True)]
    counts: dict = {}
    for c in cells:
        counts[c] = counts.get(c, 0) + 1
    even = np.array([len(faces) / len(counts) / counts[c] for c in cells])  # uncapped: every cell alike

    def ratios(scale: float) -> np.ndarray:  # how often each face is drawn, relative to plain sampling
        return np.clip(scale * even, 1 / cap, cap)

    lo, hi = 1e-6, 1e6  # the mean ratio grows with the scale: bisect for a mean of 1 (n draws per epoch)
    for _ in range(100):
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if ratios(mid).mean() < 1 else (lo, mid)
    ratio = ratios((lo * hi) ** 0.5)
    return ratio / ratio.sum()


def bias_groups(group_by: str) -> tuple[str, ...]:
    """The cells whose adults' mean signed error the group term lowers: each ethnicity as the data
    states it (AAF's whole set counts as one, "mostly Asian"), or each ethnicity × gender."""
    ethnicities = (*ETHNICITIES, AAF_ETHNICITY)
    if group_by == "ethnicity":
        return ethnicities
    return tuple(f"{e} {g}" for e in ethnicities for g in GENDERS)


def adult_groups(faces: list[Face], group_by: str = "ethnicity") -> np.ndarray:
    """Each face's cell as an index into bias_groups(group_by) if it is an adult (ADULTS) of a known
    cell, else -1: what the loss's group term (losses.L1WithGroupBias) averages over."""
    cells = bias_groups(group_by)
    keys = [f.ethnicity if group_by == "ethnicity" else f"{f.ethnicity} {f.gender}" for f in faces]
    adult = [ADULTS[0] <= f.age <= ADULTS[1] and k in cells for f, k in zip(faces, keys, strict=True)]
    return np.array([cells.index(k) if a else -1 for k, a in zip(keys, adult, strict=True)], "int32")


def clipped_ages(faces: list[Face], recipe: Recipe) -> np.ndarray:
    """Each face's age within the model's range (UTKFace's few over-100s count as 100)."""
    return np.clip([f.age for f in faces], recipe.min_age, recipe.max_age).astype("int64")


def age_prior(faces: list[Face], recipe: Recipe) -> np.ndarray:
    """[K]: the mean training target over `faces`, the age prior a head trained on them learns. An
    age never seen (one-hot targets) counts as seen a hundredth as often as a uniform prior would,
    so that dividing by the prior stays finite."""
    prior = label_distributions(recipe)[clipped_ages(faces, recipe) - recipe.min_age].mean(axis=0)
    prior = np.maximum(prior, 0.01 / len(prior))
    return prior / prior.sum()


def targets(faces: list[Face], recipe: Recipe) -> dict[str, np.ndarray]:
    """Each face's training targets: "probabilities", the target distribution of its age (see
    label_distributions), and "expected_age", its age; with the recipe's group_bias_weight,
    (age, adult_groups code), which losses.L1WithGroupBias reads."""
    ages = clipped_ages(faces, recipe)
    expected = ages.astype("float32")
    if recipe.group_bias_weight > 0:
        expected = np.stack([expected, adult_groups(faces, recipe.group_by).astype("float32")], axis=1)
    return {"probabilities": label_distributions(recipe)[ages - recipe.min_age], "expected_age": expected}


def make_dataset(
    faces: list[Face],
    data_root: Path,
    recipe: Recipe,
    training: bool,
    batch_size: int | None = None,
) -> tf.data.Dataset:
    """Batches of (float32 RGB 0..255 images, `targets`).

    Training batches follow the recipe's sampling: shuffled once per epoch ("plain"), or drawn with
    replacement by `balanced_weights` (the "balanced" ones, as many draws per epoch as there are faces).
    """
    if training and recipe.distill_teacher:
        return distilled_dataset(faces, data_root, recipe, batch_size)
    size, augment = recipe.input_size, recipe.augment if training else None
    paths = tf.constant([str(Path(data_root) / f.path) for f in faces])
    target = {name: tf.constant(values) for name, values in targets(faces, recipe).items()}
    if training and recipe.sampling in BALANCED_BY:
        weights = balanced_weights(faces, recipe.balance_cap, BALANCED_BY[recipe.sampling])
        logits = tf.constant(np.log(weights)[None], tf.float32)
        ds = tf.data.Dataset.range(len(faces)).map(lambda _: tf.random.categorical(logits, 1)[0, 0])
    else:
        ds = tf.data.Dataset.range(len(faces))
        if training:
            ds = ds.shuffle(len(faces), seed=recipe.seed, reshuffle_each_iteration=True)

    def load(i):
        seed = tf.random.uniform([], 0, 2**31 - 1, dtype=tf.int64)
        image = tf.numpy_function(
            lambda p, s: _load(p, size, int(s), augment), [paths[i], seed], tf.uint8, stateful=training
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
            if augment.saturation > 0:
                image = tf.image.random_saturation(image, 1 - augment.saturation, 1 + augment.saturation)
            image = tf.clip_by_value(image, 0.0, 255.0)
        return image, {name: values[i] for name, values in target.items()}

    ds = ds.map(load, num_parallel_calls=AUTOTUNE, deterministic=not training)
    return ds.batch(batch_size or recipe.batch_size).prefetch(AUTOTUNE)


def distilled_dataset(
    faces: list[Face], data_root: Path, recipe: Recipe, batch_size: int | None = None
) -> tf.data.Dataset:
    """Training batches for a distilling recipe: each face meets one of its labelled views at random
    (distill.augmented_view, every augmentation included), with the target mixed from its label and
    the teachers' answers for those very pixels (distill's module docstring)."""
    from model_training import distill

    views, size = recipe.distill_views, recipe.input_size
    folder = distill.labels_dir(faces, recipe.augment, size, Path(recipe.distill_teacher))
    teacher, faceapi = distill.read_labels(folder, len(faces), views)
    label = targets(faces, recipe)
    ages = np.array(recipe.ages, np.float32)
    w_t, w_f = recipe.distill_weight, recipe.faceapi_weight
    mixed = (1 - w_t - w_f) * label["probabilities"][None] + w_t * teacher.astype(np.float32)
    if w_f > 0:
        mixed = mixed + w_f * distill.gaussian_targets(faceapi, ages, recipe.faceapi_sigma)
    mixed = tf.constant(mixed / mixed.sum(axis=-1, keepdims=True))
    seeds = tf.constant([[distill.view_seed(f, v) for f in faces] for v in range(views)], tf.int64)
    paths = tf.constant([str(Path(data_root) / f.path) for f in faces])
    expected = tf.constant(label["expected_age"])
    augment = recipe.augment

    def load(i):
        view = tf.random.uniform([], 0, views, dtype=tf.int64)
        image = tf.numpy_function(
            lambda p, s: distill.augmented_view(read_rgb(p.decode()), int(s), augment, size),
            [paths[i], seeds[view, i]],
            tf.uint8,
        )
        image = tf.cast(tf.ensure_shape(image, (size, size, 3)), tf.float32)
        return image, {"probabilities": mixed[view, i], "expected_age": expected[i]}

    ds = tf.data.Dataset.range(len(faces)).shuffle(len(faces), seed=recipe.seed, reshuffle_each_iteration=True)
    ds = ds.map(load, num_parallel_calls=AUTOTUNE, deterministic=False)
    return ds.batch(batch_size or recipe.batch_size).prefetch(AUTOTUNE)
