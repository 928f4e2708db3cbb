"""experiments/published_speed.py: our ports against BasicSR's PyTorch code in one run.

The comparison itself is a benchmark run by hand (its table is in the README); here: the
one-line message where torch is missing (default suite, no torch needed), and a --quick
run of two cases where the authors' venv exists (slow)."""

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import ROOT, optimised_env

SCRIPT = str(ROOT / "experiments" / "published_speed.py")
TORCH_PYTHON = "/tmp/tvenv/bin/python"  # torch + torchvision + basicsr (tests/data/published/README.md)


def test_without_torch_says_so_in_one_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, SCRIPT, f"--torch_python={tmp_path / 'no_python'}", f"--out={tmp_path / 'r'}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 1
    assert proc.stderr.strip().count("\n") == 0 and "torch + basicsr 1.4.2 are not installed" in proc.stderr
    assert not os.path.exists(tmp_path / "r.json")
    bad = subprocess.run([sys.executable, SCRIPT, "--cases=nope"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1 and "unknown case 'nope'" in bad.stderr


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(TORCH_PYTHON), reason=f"no torch venv at {TORCH_PYTHON}")
def test_quick_run_checks_outputs_and_writes_the_table(tmp_path):
    out = tmp_path / "speed"
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--quick",
         "--cases=msrresnet_infer_64,msrresnet_train_b16,conv_grad_1x64x64,dcn_infer_1x64x64,dcn_grad_1x64x64,"
         "edvr_infer_7x64",
         f"--out={out}"],
        capture_output=True, text=True, timeout=900, cwd=ROOT, env=optimised_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "speed.json").read_text())
    assert "--xla_backend_optimization_level=0" not in result["xla_flags"]  # the users' settings
    assert result["torch_threads"] == 2 and result["versions"]["basicsr"] == "1.4.2"
    infer, train, grad, dcn, dcn_grad, edvr = result["rows"]
    assert infer["max_abs_diff"] <= 1e-4 and train["loss_abs_diff"] <= 1e-5
    assert grad["max_abs_diff"] <= 1e-5  # the layer's three gradients, relative to their largest entries
    assert dcn["max_abs_diff"] <= 1e-4 and dcn_grad["max_abs_diff"] <= 1e-4  # DCN: five gradients, relative
    assert edvr["max_abs_diff"] <= 1e-4  # every frame of the clip, each from its window
    for row in (infer, train, grad, dcn, dcn_grad, edvr):
        assert len(row["jax"]["times_s"]) == len(row["torch"]["times_s"]) == 1
        assert row["ratio_min"] == pytest.approx(row["jax"]["min_s"] / row["torch"]["min_s"])
    table = (tmp_path / "speed.md").read_text()
    assert "| MSRResNet ×4 inference, one frame 24×24 | ms/frame |" in table
    assert "| MSRResNet ×4 training, 2×1×16×16, L1 + Adam | frames/s |" in table
    assert "| one 3×3 conv 16→16, 1×24×24, backward (input, kernel, bias) | ms/call |" in table
    assert "| one modulated DCN 3×3 32→16, 4 offset groups, 1×24×24, forward | ms/call |" in table
    assert "torchvision 0.29.1" in table.splitlines()[0]
