"""Frozen-backbone probe: how well each ImageNet backbone's features tell age, before a long run.

For each backbone, the pooled features of training and validation faces of every source (framed as
evaluation frames them, at the recipe's input size), a linear softmax head over the ages fitted on
the training features with the recipe's label distributions (Adam, full batches), and the
expected age's MAE on the validation faces, per source and their mean. Cheap (minutes), so that a
backbone earns its long run (docs/experiments.md, Model 4.0).

Usage: python scripts/probe_backbones.py [--recipe mobilenet_v2_two_sources] [--train 3000] [--val 1000] [--seed 0]
"""

from __future__ import annotations

import argparse
import random
from dataclasses import replace

import keras
import numpy as np

from model_training.config import load_recipe
from model_training.dataset import read_manifest
from model_training.model import build_model
from model_training.pipeline import clipped_ages, label_distributions
from model_training.train import pooled_features

# each backbone's ImageNet weights and input normalisation, as the recipe that trains it from them says
BACKBONE_RECIPES = ("mobilenet_v2", "efficientnet_lite0_two_sources")


def probe(recipe, train_faces, val_faces, epochs: int, seed: int) -> dict:
    model = build_model(recipe)
    train_x, val_x = pooled_features(model, train_faces, recipe), pooled_features(model, val_faces, recipe)
    keras.utils.set_random_seed(seed)
    head = keras.Sequential(
        [keras.Input(train_x.shape[1:]), keras.layers.Dense(len(recipe.ages), activation="softmax")]
    )
    head.compile(keras.optimizers.Adam(1e-3), "categorical_crossentropy")
    targets = label_distributions(recipe)[clipped_ages(train_faces, recipe) - recipe.min_age]
    head.fit(train_x, targets, batch_size=256, epochs=epochs, verbose=0)
    expected = head.predict(val_x, verbose=0) @ np.array(recipe.ages, "float32")
    errors = np.abs(expected - clipped_ages(val_faces, recipe))
    sources = sorted({f.source for f in val_faces})
    by_source = {s: float(errors[[f.source == s for f in val_faces]].mean()) for s in sources}
    return {"by_source": by_source, "mean": float(np.mean(list(by_source.values())))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", default="mobilenet_v2_two_sources", help="its manifest, framing and targets")
    parser.add_argument("--backbone-recipe", nargs="+", default=list(BACKBONE_RECIPES), help="whose backbones to probe")
    parser.add_argument("--train", type=int, default=3000)
    parser.add_argument("--val", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    recipe = load_recipe(args.recipe)
    faces = read_manifest(recipe.manifest)
    rng = random.Random(args.seed)
    train_faces = rng.sample([f for f in faces if f.split == "train"], args.train)
    val_faces = rng.sample([f for f in faces if f.split == "val"], args.val)
    print(
        f"{len(train_faces)} training and {len(val_faces)} validation faces, {recipe.input_size} px, seed {args.seed}"
    )
    print("| backbone | mean of the sources' MAE | " + " | ".join(sorted({f.source for f in val_faces})) + " |")
    for name in args.backbone_recipe:
        source = load_recipe(name)
        backbone = {"backbone": source.backbone, "weights": source.weights, "normalization": source.normalization}
        result = probe(replace(recipe, **backbone, warm_start=""), train_faces, val_faces, args.epochs, args.seed)
        sources = " | ".join(f"{v:.3f}" for _, v in sorted(result["by_source"].items()))
        print(f"| {source.backbone} | {result['mean']:.3f} | {sources} |")


if __name__ == "__main__":
    main()
