"""`vsr-bench` runs end to end on a tiny config (its numbers are printed, never asserted)."""

from tests.conftest import tiny_unet_config
from vsr_jax import bench


def test_bench_measures_both_rates():
    config = tiny_unet_config()
    assert bench.input_pipeline_rate(config, 2) > 0
    assert bench.train_step_rate(config, 2) > 0
