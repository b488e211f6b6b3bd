"""Training recipes: TOML files in `model_training/recipes/`, resolved into one dataclass."""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from app.model.distribution import smoothing_kernel
from model_training.dataset import DEFAULT_DATA_ROOT, DEFAULT_MANIFEST

RECIPES = Path(__file__).parent / "recipes"
# what balanced sampling evens out, with the age band: "balanced" the ethnicity × age-band cells,
# "balanced_gender" the ethnicity × gender × age-band cells
BALANCED_BY = {"balanced": ("ethnicity",), "balanced_gender": ("ethnicity", "gender")}
SAMPLINGS = ("plain", *BALANCED_BY)


# what a stage trains. "head": the Dense head, backbone frozen; "all": the whole network (batch norm
# stays frozen); "head_refit": the head alone, refitted in full-batch steps (one per epoch) on the
# pooled features of every training chip and its mirror image, computed once; "soup": no training,
# the mean of the weights the stages named in `soup` ended with (a model soup); "prior": no training,
# the training faces' age prior divided out of the head, to the power `prior_strength` (model.adjust_prior)
TRAINS = ("head", "all", "head_refit", "soup", "prior")
GROUP_BY = ("ethnicity", "ethnicity_gender")


@dataclass(frozen=True)
class Stage:
    name: str
    train: str  # one of TRAINS
    epochs: int = 1
    learning_rate: float = 1e-3
    patience: int = 3
    sampling: str = ""  # "" keeps the recipe's; one of SAMPLINGS for this stage alone
    # the run's best weights restart with this stage, even at a higher validation MAE: for a stage
    # that trades some MAE for another goal (balanced exposure against the age bias by group)
    restart_best: bool = False
    group_bias_weight: float | None = None  # None keeps the recipe's
    soup: tuple[str, ...] = ()  # train = "soup": the earlier stages whose weights are averaged
    prior_strength: float = 0.0  # train = "prior": α in logits − α · log prior (0: unchanged, 1: prior removed)

    @property
    def restarts_best(self) -> bool:
        """A head refit, a soup and a prior adjustment always give the run its best weights: their
        MAE is not the point."""
        return self.restart_best or self.train in ("head_refit", "soup", "prior")


@dataclass(frozen=True)
class Augment:
    crop_scale: tuple[float, float] = (0.9, 1.1)  # side of the random square / side of the chip
    crop_shift: float = 0.05  # largest centre shift, as a share of the chip side
    flip: bool = True
    rotation_deg: float = 10.0
    brightness: float = 0.15  # largest change, as a share of the 0..255 range
    contrast: float = 0.2  # contrast factor drawn from [1 - c, 1 + c]
    # what other cameras do to a face (each applied with its probability; 0: never): a smaller face
    # scaled up (down to `downscale_min` of the side), blur (σ up to `blur_sigma` px), JPEG
    # compression (quality drawn from `jpeg_quality`), colour saturation drawn from [1 - s, 1 + s]
    downscale_p: float = 0.0
    downscale_min: float = 0.3
    blur_p: float = 0.0
    blur_sigma: float = 1.5
    jpeg_p: float = 0.0
    jpeg_quality: tuple[int, int] = (30, 90)
    saturation: float = 0.0


@dataclass(frozen=True)
class Recipe:
    name: str
    backbone: str  # "mobilenet_v2", "resnet50" or "efficientnet_lite0/1/2" (model.BACKBONES)
    weights: str  # "imagenet", "none", or a path to a Keras weights file
    normalization: str  # "tf" ([-1, 1]), "torch" (ImageNet mean/std), "caffe" (BGR, mean-subtracted)
    input_size: int = 224
    min_age: int = 0
    max_age: int = 100
    dropout: float = 0.2
    batch_size: int = 32
    seed: int = 1337
    manifest: str = str(DEFAULT_MANIFEST)
    data_root: str = str(DEFAULT_DATA_ROOT)
    # "ce": cross-entropy on the one-hot age (DEX); "ldl": on a discretised Gaussian around the true
    # age of σ = ldl_sigma + ldl_sigma_per_year · age (label-distribution learning, DLDL)
    loss: str = "ce"
    ldl_sigma: float = 2.0
    ldl_sigma_per_year: float = 0.0
    l1_weight: float = 0.0  # weight of an L1 loss on the expected age (DLDL-v2); 0: none
    # weight of a term on the mean signed error of each ethnicity's adults (30–69) in a batch,
    # squared (see losses.L1WithGroupBias); 0: none
    group_bias_weight: float = 0.0
    group_by: str = "ethnicity"  # the term's cells: "ethnicity" or "ethnicity_gender" (pipeline.bias_groups)
    # "plain": every training face once per epoch; "balanced": faces drawn so that the ethnicity ×
    # age-band cells are seen about equally often, no face more than balance_cap times as often as
    # plain; "balanced_gender": the same over ethnicity × gender × age band (see BALANCED_BY)
    sampling: str = "plain"
    balance_cap: float = 4.0
    warm_start: str = ""  # a model directory or .weights.h5 whose weights start the whole network
    # output smoothing, applied in the exported graph after the temperature: each age's probability
    # spread over its neighbours by a Gaussian of σ = smooth_sigma + smooth_sigma_per_year · age
    # (UTKFace's labels heap on round ages, which the softmax learns as a comb); 0, 0: none
    smooth_sigma: float = 0.0
    smooth_sigma_per_year: float = 0.0
    augment: Augment = field(default_factory=Augment)
    # distillation (model_training.distill): a teacher model directory ("" : none) whose distribution
    # on each of `distill_views` fixed views of every training face is mixed into the target with
    # weight `distill_weight`, and face-api.js's age on the same view, as a Gaussian of σ
    # `faceapi_sigma` years, with weight `faceapi_weight`; the label keeps the rest
    distill_teacher: str = ""
    distill_views: int = 4
    distill_weight: float = 0.0
    faceapi_weight: float = 0.0
    faceapi_sigma: float = 6.0
    stages: tuple[Stage, ...] = ()

    @property
    def ages(self) -> list[int]:
        return list(range(self.min_age, self.max_age + 1))

    def smoothing_kernel(self) -> np.ndarray | None:
        """The output smoothing export puts in the graph (None: none); see distribution.smoothing_kernel."""
        return smoothing_kernel(np.array(self.ages, np.float64), self.smooth_sigma, self.smooth_sigma_per_year)

    def to_dict(self) -> dict:
        return asdict(self)

    def dumps(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def recipe_from_dict(data: dict) -> Recipe:
    data = dict(data)
    if "base" in data:  # a recipe may change a few keys of another: base = "mobilenet_v2"
        base = load_recipe(data.pop("base")).to_dict()
        base.pop("stages")
        if "stages" not in data:
            raise ValueError("a recipe with a base lists its own stages")
        data = {**base, **data, "augment": {**base["augment"], **data.get("augment", {})}}
    augment = dict(data.pop("augment", {}))
    for key in ("crop_scale", "jpeg_quality"):
        if key in augment:
            augment[key] = tuple(augment[key])
    stages = tuple(Stage(**{**s, "soup": tuple(s.get("soup", ()))}) for s in data.pop("stages", []))
    known = {f.name for f in fields(Recipe)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown recipe keys: {sorted(unknown)}")
    recipe = Recipe(**data, augment=Augment(**augment), stages=stages)
    if recipe.loss not in {"ce", "ldl"}:
        raise ValueError(f"loss must be 'ce' or 'ldl', not {recipe.loss!r}")
    if recipe.l1_weight < 0 or recipe.group_bias_weight < 0:
        raise ValueError("l1_weight and group_bias_weight must not be negative")
    if recipe.group_by not in GROUP_BY:
        raise ValueError(f"group_by must be one of {GROUP_BY}, not {recipe.group_by!r}")
    if recipe.sampling not in SAMPLINGS:
        raise ValueError(f"sampling must be one of {SAMPLINGS}, not {recipe.sampling!r}")
    if min(recipe.distill_weight, recipe.faceapi_weight) < 0 or recipe.distill_weight + recipe.faceapi_weight > 1:
        raise ValueError("distill_weight and faceapi_weight must not be negative, nor sum past 1")
    if (recipe.distill_weight + recipe.faceapi_weight > 0) != bool(recipe.distill_teacher) or recipe.distill_views < 1:
        raise ValueError("a distilling recipe names its teacher, at least one view, and a positive teacher weight")
    if recipe.distill_teacher and recipe.sampling != "plain":
        raise ValueError("a distilling recipe samples plainly (every face's views were labelled once)")
    for i, stage in enumerate(recipe.stages):
        if stage.train not in TRAINS:
            raise ValueError(f"stage {stage.name}: train must be one of {TRAINS}, not {stage.train!r}")
        if stage.sampling not in ("", *SAMPLINGS):
            raise ValueError(f"stage {stage.name}: sampling must be one of {SAMPLINGS}, not {stage.sampling!r}")
        if (stage.group_bias_weight or 0) < 0:
            raise ValueError(f"stage {stage.name}: group_bias_weight must not be negative")
        if stage.prior_strength < 0 or (stage.prior_strength > 0) != (stage.train == "prior"):
            raise ValueError(f"stage {stage.name}: a prior stage, and only one, sets a positive prior_strength")
        if stage.train == "head_refit" and (stage.sampling or recipe.sampling) != "plain":
            raise ValueError(f"stage {stage.name}: a head refit fits every face once; its sampling must be plain")
        earlier = {s.name for s in recipe.stages[:i]}
        if (stage.train == "soup") != bool(stage.soup) or not set(stage.soup) <= earlier:
            raise ValueError(f"stage {stage.name}: a soup stage, and only one, names earlier stages in `soup`")
    return recipe


def load_recipe(path: str | Path) -> Recipe:
    """A recipe by file path, or by name from the built-in recipes (e.g. "mobilenet_v2")."""
    path = Path(path)
    if not path.exists() and (RECIPES / f"{path.name}.toml").exists():
        path = RECIPES / f"{path.name}.toml"
    if path.suffix == ".json":
        return recipe_from_dict(json.loads(path.read_text()))
    with path.open("rb") as fh:
        return recipe_from_dict(tomllib.load(fh))


def override(recipe: Recipe, **changes) -> Recipe:
    """Apply command-line overrides (None means: keep the recipe's value)."""
    changes = {k: v for k, v in changes.items() if v is not None}
    epochs = changes.pop("epochs", None)
    if epochs is not None:
        changes["stages"] = tuple(replace(s, epochs=epochs) for s in recipe.stages)
    return replace(recipe, **changes)
