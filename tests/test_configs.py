"""Every recipe in configs/ (full and :quick presets) builds its model and passes validation."""

import jax
import jax.numpy as jnp
import pytest

from tests.conftest import ROOT, load_config
from vsr_jax import config_lib, models

CONFIGS = sorted(p.stem for p in (ROOT / "configs").glob("*.py"))


def test_every_recipe_is_listed():
    assert {"srcnn", "unet", "runet", "srresnet", "srgan", "convlstm", "gan"} <= set(CONFIGS)


def _check_builds(config):
    """The config validates and its model maps a training patch to the HR patch (shapes only)."""
    config_lib.validate(config)
    d = config.data
    model = models.create_model(config.model.name, int(d.scale), config_lib.model_kwargs(config))
    lr = jax.ShapeDtypeStruct((1, d.num_frames, d.patch_size, d.patch_size, 3), jnp.float32)
    out = jax.eval_shape(lambda x: model.apply(model.init(jax.random.key(0), x), x), lr)  # nothing compiles
    hr = d.patch_size * d.scale
    assert out.shape == (1, d.num_frames, hr, hr, 3)


@pytest.mark.parametrize("preset", ["full", "quick"])
@pytest.mark.parametrize("name", CONFIGS)
def test_recipe_builds_its_model(name, preset):
    config = load_config(name, preset)
    _check_builds(config)
    if preset == "quick":
        assert config.total_steps <= 400


@pytest.mark.parametrize("preset", ["colab", "tiny"])
def test_gan_notebook_presets(preset):
    """configs/gan.py's presets for the Colab notebook (colab) and its test (tiny)."""
    config = load_config("gan", preset)
    _check_builds(config)
    assert config.batch_size % 8 == 0  # splits evenly over the 8 cores of a TPU v2-8 / v5e-8
    assert config.gan.loss and config.gan.pretrain_steps < config.total_steps  # the discriminator trains
    assert config.loss.perceptual_weight == 0  # no VGG weights in Colab
    if preset == "colab":
        assert config.gan.pretrain_steps > 0  # FRVSR warm-up first
    else:
        assert config.total_steps <= 10 and config.total_steps % config.checkpoint_every == 0


def test_convlstm_cpu_preset_is_quick_in_both_directions():
    """configs/convlstm.py:cpu, the quick start's video model: :quick except both directions,
    learning rate 2e-3 and 480 steps (the README's quick_curve table measures it)."""
    quick, cpu = load_config("convlstm", "quick"), load_config("convlstm", "cpu")
    _check_builds(cpu)
    assert cpu.model.bidirectional and not quick.model.bidirectional
    assert (cpu.learning_rate, cpu.total_steps) == (2e-3, 480)
    changed = {k for k, v in config_lib.flatten(cpu.to_dict()).items() if config_lib.flatten(quick.to_dict())[k] != v}
    assert changed == {"model.bidirectional", "learning_rate", "total_steps", "checkpoint_every"}


@pytest.mark.parametrize("name", CONFIGS)
def test_unknown_preset_is_named(name):
    with pytest.raises(ValueError, match="unknown preset 'fast'"):
        load_config(name, "fast")
