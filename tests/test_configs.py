"""Every recipe in configs/ (full and :quick presets) builds its model and passes validation."""

import jax
import jax.numpy as jnp
import pytest

from tests.conftest import ROOT, load_config
from vsr_jax import config_lib, models, train

CONFIGS = sorted(p.stem for p in (ROOT / "configs").glob("*.py"))


def test_every_recipe_is_listed():
    assert {"srcnn", "unet", "runet", "srresnet", "srgan", "convlstm", "gan"} <= set(CONFIGS)


@pytest.mark.parametrize("preset", ["full", "quick"])
@pytest.mark.parametrize("name", CONFIGS)
def test_recipe_builds_its_model(name, preset):
    config = load_config(name, preset)
    train.validate_config(config)
    d = config.data
    model = models.create_model(config.model.name, int(d.scale), config_lib.model_kwargs(config))
    lr = jax.ShapeDtypeStruct((1, d.num_frames, d.patch_size, d.patch_size, 3), jnp.float32)
    out = jax.eval_shape(lambda x: model.apply(model.init(jax.random.key(0), x), x), lr)  # nothing compiles
    hr = d.patch_size * d.scale
    assert out.shape == (1, d.num_frames, hr, hr, 3)
    if preset == "quick":
        assert config.total_steps <= 400


@pytest.mark.parametrize("name", CONFIGS)
def test_unknown_preset_is_named(name):
    with pytest.raises(ValueError, match="unknown preset 'fast'"):
        load_config(name, "fast")
