"""vsr-eval (`python -m vsr_jax.evaluate`): a trained run's checkpoints, --all, --watch,
--pred_dir/--gt_dir without a model, and one-line errors."""

import json
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT, optimised_env, tiny_unet_config
from vsr_jax import train

EVAL_FLAGS = ("--max_clips=1", "--frame_stride=1")  # every frame: tOF and the warping error too
QUICK_FLAGS = ("--max_clips=1", "--frame_stride=25")  # 2 frames: for the checks that need no temporal metric


def run_eval(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "vsr_jax.evaluate", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
        env=optimised_env(),  # whole clips through SSIM and flow: run time, not compile time, dominates
    )


def _config(steps):
    # x2 tiny U-Net; its own final evaluation is kept short (the binary's is what is tested)
    return tiny_unet_config(total_steps=steps, checkpoint_every=10, **{"eval.max_clips": 1, "eval.frame_stride": 25})


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("run") / "unet"
    train.train_and_evaluate(_config(20), str(workdir))
    return workdir


def error_lines(proc):
    return [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith(("W", "I"))]


def test_latest_checkpoint_metrics_and_files(trained, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(trained, workdir)
    proc = run_eval(f"--workdir={workdir}", *EVAL_FLAGS)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not re.search(r"read[ _]only", proc.stderr, re.IGNORECASE), proc.stderr  # Orbax's notices: -v 1 only
    out = workdir / "eval" / "20"
    result = json.loads((out / "metrics.json").read_text())
    assert result["step"] == 20 and result["model"] == "unet" and result["dataset"] == "sample"
    assert result["crop_border"] == 2 and result["scale"] == 2
    for key in ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "tof", "bicubic_psnr_y", "bicubic_tof"):
        assert np.isfinite(result[key]), key
    assert 20 < result["psnr_y"] < 60 and 0.5 < result["ssim_y"] <= 1.0
    (clip,) = result["clips"].values()
    assert clip["psnr_y"] == pytest.approx(result["psnr_y"]) and clip["num_frames"] == result["num_frames"] > 1
    csv = (out / "metrics.csv").read_text().splitlines()
    assert csv[0].startswith("clip,") and csv[-1].startswith("mean over clips,") and len(csv) == 3
    assert (out / "samples.png").stat().st_size > 1000
    assert list((workdir / "eval").glob("events.out.tfevents.*"))
    assert "mean over clips" in proc.stdout

    # --all evaluates every kept checkpoint; several results make a comparison table
    proc = run_eval(f"--workdir={workdir}", "--all", f"--compare_out={tmp_path / 'cmp'}", *QUICK_FLAGS)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (workdir / "eval" / "10" / "metrics.json").exists()
    md = (tmp_path / "cmp.md").read_text().splitlines()
    assert md[0].startswith("| run | model | step |") and len(md) == 4  # header, rule, steps 10 and 20
    step10 = json.loads((workdir / "eval" / "10" / "metrics.json").read_text())
    assert step10["num_frames"] == 2 and step10["psnr_y"] != result["psnr_y"]


def test_watch_evaluates_a_checkpoint_written_after_it_started(trained, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(trained, workdir)
    shutil.rmtree(workdir / "eval")
    shutil.rmtree(workdir / "checkpoints" / "20")  # the run as it was at step 10
    watcher = subprocess.Popen(
        [sys.executable, "-m", "vsr_jax.evaluate", f"--workdir={workdir}", "--watch", "--idle_timeout=600"]
        + ["--poll_every=0.5", *QUICK_FLAGS],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.time() + 240
        while not (workdir / "eval" / "10" / "metrics.json").exists():
            assert watcher.poll() is None and time.time() < deadline, "watcher stopped before step 10"
            time.sleep(0.5)
        train.train_and_evaluate(_config(20), str(workdir))  # resumes: a new checkpoint while it watches
        stdout, stderr = watcher.communicate(timeout=300)  # it stops after the run's final step
    finally:
        watcher.kill()
    assert watcher.returncode == 0, stderr[-2000:]
    assert json.loads((workdir / "eval" / "20" / "metrics.json").read_text())["step"] == 20
    assert "evaluated the final step 20" in stdout


def test_watch_stops_after_the_idle_timeout(tmp_path):
    t0 = time.time()
    proc = run_eval(f"--workdir={tmp_path}", "--watch", "--idle_timeout=2", "--poll_every=0.2")
    assert proc.returncode == 0 and "no new checkpoint" in proc.stdout, proc.stderr[-2000:]
    assert time.time() - t0 < 120


def _write_frames(folder, frames):
    folder.mkdir(parents=True)
    for i, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{i:04d}.png")


def test_pred_dir_against_itself_is_perfect_and_inf_is_reported(tmp_path):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 40, 48, 3), dtype=np.uint8)
    _write_frames(tmp_path / "gt" / "clipA", frames)
    _write_frames(tmp_path / "pred" / "clipA", frames)
    from tests.lpips_seeded import seeded_state_dicts
    from vsr_jax import lpips

    weights = str(tmp_path / "lpips.npz")  # seeded LPIPS-alex (tests/test_lpips.py checks it against lpips)
    lpips.save_lpips(weights, lpips.from_state_dicts(*seeded_state_dicts("alex"), "alex"), "alex")
    args = (f"--pred_dir={tmp_path / 'pred'}", f"--gt_dir={tmp_path / 'gt'}", f"--out={tmp_path / 'out'}")
    proc = run_eval(*args, f"--lpips_weights={weights}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads((tmp_path / "out" / "metrics.json").read_text())  # Python's json reads Infinity
    assert result["psnr_y"] == float("inf") and result["psnr_rgb"] == float("inf")
    assert result["ssim_y"] == pytest.approx(1.0) and result["tof"] == 0.0
    assert result["lpips"] == 0.0 and result["tlp"] == 0.0
    assert "inf" in proc.stdout

    # a prediction that differs is scored like the library does
    noisy = np.clip(frames.astype(int) + rng.integers(-3, 4, frames.shape), 0, 255).astype(np.uint8)
    shutil.rmtree(tmp_path / "pred")
    _write_frames(tmp_path / "pred" / "clipA", noisy)
    proc = run_eval(f"--pred_dir={tmp_path / 'pred'}", f"--gt_dir={tmp_path / 'gt'}", f"--out={tmp_path / 'out'}")
    result = json.loads((tmp_path / "out" / "metrics.json").read_text())
    from vsr_jax import metrics

    expected = np.mean(np.asarray(metrics.psnr(noisy / 255.0, frames / 255.0, y_channel=True)))
    assert result["psnr_y"] == pytest.approx(float(expected), abs=1e-3)


def test_checkpoint_of_another_model_is_refused(trained, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(trained, workdir)
    for meta in workdir.glob("checkpoints/*/config/metadata"):
        config = json.loads(meta.read_text())
        config["model"] = {"name": "srcnn"}
        meta.write_text(json.dumps(config))
    proc = run_eval(f"--workdir={workdir}", *EVAL_FLAGS)
    assert proc.returncode != 0
    lines = error_lines(proc)
    assert len(lines) == 1 and lines[0].startswith("vsr-eval: error:"), proc.stderr[-2000:]
    assert "does not hold the 'srcnn' model" in lines[0]
    assert not (workdir / "eval" / "20").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--workdir=/nope/run"], "no checkpoints in /nope/run"),
        (["--pred_dir=/nope/a", "--gt_dir=/nope/b"], "does not exist"),
        (["--pred_dir=/nope/a"], "go together"),
        ([], "give --workdir"),
        (["--workdir=/nope/run", "--dataset=vid4"], "no checkpoints"),
        (["--pred_dir=/tmp", "--gt_dir=/tmp", "--lpips_weights=/nope.npz"], "LPIPS weights /nope.npz not found"),
    ],
)
def test_bad_input_is_one_line_and_nonzero(args, message):
    proc = run_eval(*args)
    assert proc.returncode != 0
    lines = error_lines(proc)
    assert len(lines) == 1 and lines[0].startswith("vsr-eval: error:") and message in lines[0], proc.stderr
