"""`vsr-bench` runs end to end on a tiny config (its numbers are printed, never asserted)."""

from tests.conftest import tiny_unet_config
from vsr_jax import bench


def test_bench_measures_both_rates():
    config = tiny_unet_config()
    assert bench.input_pipeline_rate(config, 2) > 0
    assert bench.train_step_rate(config, 2) > 0


def test_quick_model_table_runs_and_writes_json(tmp_path):
    """`vsr-bench --quick` (the CI smoke test): a table and JSON with every column filled."""
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT

    out = tmp_path / "bench.json"
    env = {**os.environ, "VSR_JAX_YNN": "1"}  # what users run: YNNPACK dots on (the suite turns them off)
    proc = subprocess.run(
        [sys.executable, "-m", "vsr_jax.bench", "--quick", f"--json={out}"],
        capture_output=True, text=True, cwd=ROOT, timeout=600, env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "| model | task | LR size | ms/frame |" in proc.stdout
    result = json.loads(out.read_text())
    assert result["xla_matmul_gflops"] > 0 and len(result["rows"]) == 4
    assert "--xla_cpu_experimental_ynn_fusion_type=dot" in result["xla_flags"]
    for row in result["rows"]:
        assert row["ms_per_frame"] > 0 and row["gflops"] > 0 and row["compile_s"] > 0, row


def test_ynn_flag_is_set_only_when_jaxlib_knows_it():
    """XLA aborts on an unknown flag: vsr_jax looks the name up in jaxlib before setting it."""
    import vsr_jax

    assert vsr_jax._jaxlib_has_flag("xla_cpu_experimental_ynn_fusion_type")
    assert not vsr_jax._jaxlib_has_flag("xla_cpu_no_such_flag_" + "x" * 8)
