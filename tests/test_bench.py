"""`vsr-bench` runs end to end on a tiny config (its numbers are checked for sense, not speed)."""

import pytest

from tests.conftest import tiny_unet_config
from vsr_jax import bench


def test_config_bench_prints_the_scaling_figure_and_the_headroom():
    """`vsr-bench --config`: input batches/s with 1 and 2 parallel calls, their ratio, the
    train step rate and input / step (issue 22's acceptance), one line each."""
    config = tiny_unet_config(**{"data.parallel_calls": 2})  # the configured rate is the 2-call one
    r = bench.measure_config(config, 2)
    assert r["input_1_call"] > 0 and r["input_2_calls"] > 0 and r["train_step"] > 0
    assert r["scaling"] == r["input_2_calls"] / r["input_1_call"] and r["input"] == r["input_2_calls"]
    assert r["headroom"] == r["input"] / r["train_step"]
    lines = bench.config_report_lines(r)
    for label in ("1 parallel call", "2 parallel calls", "scaling (2 calls / 1 call)", "train step", "headroom"):
        assert sum(label in line for line in lines) == 1, (label, lines)
    assert "data.parallel_calls=2" in "\n".join(lines)


def test_quick_model_table_runs_and_writes_json(tmp_path):
    """`vsr-bench --quick` (the CI smoke test) with the users' XLA settings: a markdown table
    with a row per recipe and task that says what the JSON says, and numbers that can be
    true: GFLOP/s above 0 and below twice the matmul peak measured in the same run, peak
    memory above the weights' size and below the machine's memory."""
    import datetime
    import json
    import os
    import subprocess
    import sys

    from tests.conftest import ROOT, assert_user_xla_flags, optimised_env

    out = tmp_path / "bench.json"
    proc = subprocess.run(
        [sys.executable, "-m", "vsr_jax.bench", "--quick", f"--json={out}"],
        capture_output=True, text=True, cwd=ROOT, timeout=600, env=optimised_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(out.read_text())
    assert_user_xla_flags(result["xla_flags"])
    assert result["date"] == datetime.date.today().isoformat() and result["backend"] == "cpu"
    peak = max(result["xla_matmul_gflops"], result["numpy_sgemm_gflops"])
    assert peak > 0 and result["cpu_count"] >= 1

    # the table: a header line, then | model | task | LR size | ... | per row, as in the JSON
    table = proc.stdout[proc.stdout.index(f"{result['date']} · cpu") :].strip().splitlines()
    assert table[2].startswith("| model | task | LR size | ms/frame | frames/s | GFLOP/s | of matmul |")
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in table[4:]]
    expected = [
        (m, t, size) for m in ("srcnn:quick", "srresnet:quick") for t, size in (("inference", "32x32"), ("train", None))
    ]
    assert [tuple(c[:2]) for c in cells] == [e[:2] for e in expected] and len(result["rows"]) == 4
    memory_mb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**20
    for row, c, (model, task, size) in zip(result["rows"], cells, expected, strict=True):
        assert (row["model"], row["task"]) == (model, task) and len(c) == 10, c
        assert size is None or row["size"] == size
        assert c[2] == row["size"] and float(c[3]) == pytest.approx(row["ms_per_frame"], abs=0.06)
        assert float(c[5]) == pytest.approx(row["gflops"], abs=0.06), (c, row)
        assert row["ms_per_frame"] * row["frames_per_s"] == pytest.approx(1000, rel=1e-6)
        assert row["compile_s"] > 0 and 0 < row["gflops"] < 2 * peak, (row, peak)
        assert row["of_xla_matmul"] == pytest.approx(row["gflops"] / result["xla_matmul_gflops"])
        assert _params_mb(model) < row["peak_memory_mb"] < memory_mb, (model, row["peak_memory_mb"], memory_mb)


def _params_mb(spec: str) -> float:
    """MB of a recipe's weights, from their shapes (nothing computed)."""
    import jax
    import jax.numpy as jnp

    from vsr_jax import bench_models, config_lib, models

    config = bench_models.load_config(spec)
    net = models.create_model(config.model.name, int(config.data.scale), config_lib.model_kwargs(config))
    shapes = jax.eval_shape(lambda: models.init_variables(net, jax.random.key(0), jnp.zeros((1, 1, 16, 16, 3))))
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(shapes["params"])) / 2**20


def test_ynn_flag_is_set_only_when_jaxlib_knows_it():
    """XLA aborts on an unknown flag: vsr_jax looks the name up in jaxlib before setting it."""
    import vsr_jax

    assert vsr_jax._jaxlib_has_flag("xla_cpu_experimental_ynn_fusion_type")
    assert not vsr_jax._jaxlib_has_flag("xla_cpu_no_such_flag_" + "x" * 8)


def test_random_checkpoint_uses_its_seed_noise_and_step(tmp_path):
    """`vsr-bench upscale`'s and the upscaler tests' stand-in run folder."""
    import numpy as np

    from tests.upscale_helpers import tiny_config
    from vsr_jax import checkpointing
    from vsr_jax.upscale import bench as upscale_bench

    runs = {"a": dict(seed=0, noise=0.03), "b": dict(seed=1, noise=0.03), "plain": dict(seed=0, noise=0.0)}
    params = {}
    for name, kwargs in runs.items():
        upscale_bench.write_random_checkpoint(str(tmp_path / name), tiny_config("srcnn"), step=7, **kwargs)
        _, params[name], step = checkpointing.load_params(str(tmp_path / name))
        assert step == 7
    kernel = {name: np.asarray(p["Conv_0"]["kernel"]) for name, p in params.items()}  # the 9x9 layer
    assert not np.allclose(kernel["a"], kernel["b"])
    assert np.std(kernel["a"] - kernel["plain"]) == pytest.approx(0.03, rel=0.05)  # the same init, plus the noise


def test_model_table_covers_the_published_models_at_the_peers_sizes():
    """`vsr-bench`'s default table has msrresnet and basicvsr (issue 19); basicvsr's training
    row is one 7-frame clip (the PyTorch comparison's size), not the recipe's batch of 15-frame
    clips, and no recipe downloads weights for a speed row (`_set` with only_if_present)."""
    import ml_collections

    from vsr_jax import bench_models

    assert {"msrresnet", "basicvsr", "edvr", "basicvsrpp"} <= set(bench_models.FULL)
    assert bench_models.TRAIN_OVERRIDES["basicvsr"] == {"batch_size": 1, "data.num_frames": 7}
    assert bench_models.INFER_OVERRIDES["basicvsrpp"] == {"data.num_frames": 15}  # basicvsr's inference clips
    config = bench_models.load_config("msrresnet")
    assert (config.model.name, config.batch_size, config.data.patch_size) == ("msrresnet", 16, 32)
    c = ml_collections.ConfigDict({"batch_size": 32, "data": {"num_frames": 15}, "model": {"spynet_init": "x"}})
    for key, value in bench_models.TRAIN_OVERRIDES["basicvsr"].items():
        bench_models._set(c, key, value)
    for key in bench_models.NO_INIT_KEYS:
        bench_models._set(c, key, "", only_if_present=True)
    assert (c.batch_size, c.data.num_frames, c.model.spynet_init) == (1, 7, "")
    assert "init_from" not in c  # only where the config has it
