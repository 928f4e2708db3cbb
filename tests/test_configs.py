"""Every recipe in configs/ (full and :quick presets) builds its model and passes validation."""

import json
import types

import jax
import jax.numpy as jnp
import ml_collections
import pytest

from tests.conftest import ROOT, load_config, tiny_unet_config
from vsr_jax import checkpointing, config_lib, models

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


def _old_form(config: dict) -> dict:
    """`config` as an older vsr_jax saved it: the tuple fields as comma-separated strings,
    eval.preview_frames still there."""
    old = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    for key in (
        "lr_decay_steps",
        "loss.perceptual_layers",
        "loss.perceptual_layer_weights",
        "gan.d_features",
        "gan.feature_matching_layer_weights",
    ):
        *group, name = key.split(".")
        node = old[group[0]] if group else old
        node[name] = ",".join(str(x) for x in node[name])
    old["eval"]["preview_frames"] = 2
    return old


@pytest.mark.parametrize(("name", "preset"), [("srgan", "full"), ("gan", "tiny")])
def test_a_saved_config_with_the_old_string_forms_upgrades_to_tuples(name, preset):
    config = load_config(name, preset).to_dict()
    old = _old_form(config)
    assert isinstance(old["loss"]["perceptual_layers"], str) and "preview_frames" in old["eval"]
    assert config_lib.upgrade(old) == config
    assert config_lib.upgrade(config) == config  # today's form is left as it is
    config_lib.check_schema(ml_collections.ConfigDict(config_lib.upgrade(old)))


def test_a_checkpoint_with_the_old_string_forms_loads_with_tuples(tmp_path):
    config = tiny_unet_config(lr_schedule="step", lr_decay_steps=(20, 40), **{"gan.d_features": (8, 16)})
    model = config_lib.build_model(config)
    lr = jnp.zeros((1, config.data.num_frames, config.data.patch_size, config.data.patch_size, 3))
    params = model.init(jax.random.key(0), lr)["params"]
    old = _old_form(config.to_dict())
    checkpointing.write_run(str(tmp_path), types.SimpleNamespace(to_dict=lambda: old), params, step=3)
    loaded, _, step = checkpointing.load_params(str(tmp_path))  # vsr-eval / vsr-upscale
    assert step == 3 and list(loaded["lr_decay_steps"]) == [20, 40] and list(loaded["gan"]["d_features"]) == [8, 16]
    assert list(loaded["loss"]["perceptual_layers"]) == ["conv5_4"] and "preview_frames" not in loaded["eval"]
    ckpt = checkpointing.Checkpointer(str(tmp_path), save_every=1)
    _, _, saved_config, _ = ckpt.restore_newest(
        checkpointing.abstract_like({"params": params, "step": jnp.asarray(3)})
    )  # resuming
    ckpt.close()
    as_json = lambda d: json.loads(json.dumps(d))  # noqa: E731 - how the resume compares configs (tuples as lists)
    assert as_json(saved_config) == as_json(config.to_dict())
