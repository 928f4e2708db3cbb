"""Learning-rate schedules: warm-up, cosine, cosine with restarts, step."""

import pytest

from tests.conftest import tiny_unet_config
from vsr_jax import config_lib, errors, optimizers


def _lr(config, steps):
    schedule = optimizers.make_schedule(config)
    return [float(schedule(s)) for s in steps]


def test_warmup_then_constant():
    config = tiny_unet_config(learning_rate=1e-3, warmup_steps=10, lr_schedule="constant")
    assert _lr(config, [0, 5, 10, 500]) == pytest.approx([0.0, 5e-4, 1e-3, 1e-3])


def test_cosine_decays_to_the_floor():
    config = tiny_unet_config(learning_rate=1e-3, total_steps=100, lr_schedule="cosine", lr_min_ratio=0.1)
    assert _lr(config, [0, 50, 100]) == pytest.approx([1e-3, 0.55e-3, 1e-4], rel=1e-5)


def test_cosine_restarts_return_to_the_peak():
    config = tiny_unet_config(
        learning_rate=2e-4, total_steps=120, lr_schedule="cosine_restarts", lr_restart_every=40, warmup_steps=0
    )
    lr = _lr(config, [0, 20, 39, 40, 60, 80, 119])
    assert lr[0] == pytest.approx(2e-4) and lr[3] == pytest.approx(2e-4) and lr[5] == pytest.approx(2e-4)
    assert lr[1] == pytest.approx(1e-4, rel=1e-5) and lr[4] == pytest.approx(1e-4, rel=1e-5)
    assert lr[2] < 1e-6 and lr[6] < 1e-6


def test_step_schedule_and_bad_steps():
    config = tiny_unet_config(learning_rate=1e-3, lr_schedule="step", lr_decay_steps=(100, 200), lr_decay_factor=0.5)
    assert _lr(config, [0, 99, 100, 199, 200, 1000]) == pytest.approx([1e-3, 1e-3, 5e-4, 5e-4, 2.5e-4, 2.5e-4])
    with pytest.raises(errors.ConfigError, match="lr_decay_steps"):
        config_lib.validate(tiny_unet_config(lr_schedule="step", lr_decay_steps=(100, "later")))
    with pytest.raises(errors.ConfigError, match="unknown lr_schedule"):
        config_lib.validate(tiny_unet_config(lr_schedule="linear"))
