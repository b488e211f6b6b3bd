"""Recipes (model_training.config): options checked, a base recipe extended."""

from __future__ import annotations

import pytest

from model_training.config import load_recipe


def test_recipe_options_are_checked_and_a_base_recipe_is_extended(tmp_path):
    from model_training.config import RECIPES

    for path in RECIPES.glob("*.toml"):  # every shipped recipe loads
        assert load_recipe(path.stem).stages, path.name
    assert load_recipe("mobilenet_v2_224").input_size == 224

    compare = load_recipe("mobilenet_v2_compare_ldl_balanced")
    assert compare.loss == "ldl" and compare.sampling == "balanced" and compare.input_size == 128
    assert compare.augment == load_recipe("mobilenet_v2").augment and len(compare.stages) == 1
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'base = "mobilenet_v2"\nloss = "mse"\n[[stages]]\nname="a"\ntrain="all"\nepochs=1\nlearning_rate=1e-5\n'
    )
    with pytest.raises(ValueError, match="loss must be 'ce' or 'ldl'"):
        load_recipe(bad)
    bad.write_text(
        'base = "mobilenet_v2"\n[[stages]]\nname="a"\ntrain="all"\nepochs=1\nlearning_rate=1e-5\nsampling="even"\n'
    )
    with pytest.raises(ValueError, match="stage a: sampling must be"):
        load_recipe(bad)
    bad.write_text(
        'base = "mobilenet_v2"\ngroup_bias_weight = -1\n[[stages]]\nname="a"\ntrain="all"\nepochs=1\n'
        "learning_rate=1e-5\n"
    )
    with pytest.raises(ValueError, match="must not be negative"):
        load_recipe(bad)
    stages = '[[stages]]\nname="a"\ntrain="all"\n[[stages]]\nname="s"\ntrain="soup"\nsoup=["a", "b"]\n'
    bad.write_text('base = "mobilenet_v2"\n' + stages)
    with pytest.raises(ValueError, match="stage s: a soup stage, and only one, names earlier stages"):
        load_recipe(bad)
    bad.write_text('base = "mobilenet_v2"\nsampling = "balanced"\n[[stages]]\nname="h"\ntrain="head_refit"\n')
    with pytest.raises(ValueError, match="stage h: a head refit fits every face once"):
        load_recipe(bad)
    for stage in ('train="prior"', 'train="prior"\nprior_strength=-0.5', 'train="all"\nprior_strength=0.5'):
        bad.write_text(f'base = "mobilenet_v2"\n[[stages]]\nname="p"\n{stage}\n')
        with pytest.raises(ValueError, match="stage p: a prior stage, and only one, sets a positive prior_strength"):
            load_recipe(bad)
