"""vsr-eval --weights / --model: a published weight file scored on a standard test set with
the set's published protocol (Vid4: Y, crop 0; REDS4: RGB, crop 0), no run folder; the
numbers equal those computed here from the model's own output; one-line errors."""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from absl import flags
from absl.testing import flagsaver
from PIL import Image

from tests.conftest import ROOT
from vsr_jax import metrics
from vsr_jax.data import degrade, pipeline

PTH = pathlib.Path(__file__).parent / "data" / "pth" / "msrresnet_x4.pth"  # a narrow BasicSR MSRResNet x4
VID4 = ("calendar", "city", "foliage", "walk")
REDS4 = ("000", "011", "015", "020")


def clip_frames(seed: int, n: int = 3, h: int = 34, w: int = 42) -> np.ndarray:
    """n frames of a blocky random texture panning by 1 px (sides not multiples of 4: modcrop)."""
    big = np.kron(np.random.default_rng(seed).integers(0, 256, (h // 4 + 1, w // 4 + 2, 3)), np.ones((4, 4, 1)))
    return np.stack([np.roll(big, t, axis=1)[:h, :w] for t in range(n)]).astype(np.uint8)


def write_clip(folder: pathlib.Path, frames: np.ndarray) -> None:
    folder.mkdir(parents=True)
    for t, f in enumerate(frames):
        Image.fromarray(f).save(folder / f"{t:08d}.png")


@pytest.fixture(scope="module")
def vid4(tmp_path_factory):
    root = tmp_path_factory.mktemp("Vid4")
    for k, clip in enumerate(VID4):
        write_clip(root / "GT" / clip, clip_frames(k))
    (root / "GT" / "extra").mkdir()  # not one of Vid4's four: ignored
    return root


def expected(pairs, channel_y: bool, crop: int):
    """Mean over clips of the per-clip mean PSNR / SSIM of our model's output, computed here:
    the model applied frame by frame, clipped, rounded to 8 bits, PSNR by its formula."""
    import jax

    from vsr_jax.pretrained import importer

    _, model, params = importer.load_weights(str(PTH))
    apply = jax.jit(lambda x: model.apply({"params": params}, x, train=False))
    psnrs, ssims = [], []
    for lr, hr in pairs:
        sr = np.concatenate([np.asarray(apply(f[None, None] / np.float32(255)))[0] for f in lr])
        sr = np.floor(np.clip(sr, 0, 1) * 255 + 0.5) / 255  # the uint8 levels of a saved PNG
        gt = hr.astype(np.float64) / 255
        if channel_y:  # BT.601 luma on [0, 1] (BasicSR's bgr2ycbcr, y_only)
            to_y = lambda x: (x @ np.array([65.481, 128.553, 24.966]) + 16.0) / 255.0  # noqa: E731
            a, b = to_y(sr.astype(np.float64)), to_y(gt)
        else:
            a, b = sr.astype(np.float64), gt
        if crop:
            a, b = a[:, crop:-crop, crop:-crop], b[:, crop:-crop, crop:-crop]
        mse = ((a - b) ** 2).reshape(len(a), -1).mean(axis=1)
        psnrs.append(np.mean(10 * np.log10(1.0 / mse)))
        kw = dict(crop_border=crop, y_channel=channel_y)
        ssims.append(np.mean(np.asarray(metrics.ssim(sr.astype(np.float32), gt.astype(np.float32), **kw))))
    return float(np.mean(psnrs)), float(np.mean(ssims))


def test_vid4_cli_scores_a_weight_file_with_the_published_protocol(vid4, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "vsr_jax.evaluate", f"--weights={PTH}", "--dataset=vid4", f"--data_dir={vid4}"]
        + [f"--out={tmp_path / 'out'}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "PSNR/SSIM on Y, crop 0" in proc.stdout and "train_BasicVSR_Vimeo90K_BIx4.yml" in proc.stdout
    result = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert (result["channel"], result["crop_border"], result["degradation"]) == ("y", 0, "bi")
    assert result["model"] == "msrresnet" and sorted(result["clips"]) == sorted(VID4)
    assert result["num_frames"] == 12 and (tmp_path / "out" / "samples.png").stat().st_size > 1000

    pairs = []
    for clip in VID4:
        files = sorted((vid4 / "GT" / clip).iterdir())
        hr = np.asarray(degrade.modcrop(np.stack([np.asarray(Image.open(f)) for f in files]), 4))
        pairs.append((pipeline.degrade_clip(hr, 4, "bi"), hr))
    psnr, ssim = expected(pairs, channel_y=True, crop=0)
    assert result["psnr"] == result["psnr_y"] == pytest.approx(psnr, abs=1e-6)
    assert result["ssim"] == result["ssim_y"] == pytest.approx(ssim, abs=1e-6)
    assert 5 < psnr < 40 and abs(result["psnr_rgb"] - psnr) > 1e-3  # Y and RGB differ: the channel matters
    assert f"vid4 Y PSNR {psnr:.4f} dB" in proc.stdout


@pytest.fixture
def eval_main():
    from vsr_jax.evaluate import __main__ as vsr_eval

    def run(*args):
        with flagsaver.flagsaver():
            flags.FLAGS(["vsr-eval", *map(str, args)])
            return vsr_eval.main(["vsr-eval"])

    return run


def test_reds4_is_rgb_crop_0_on_the_published_lr(tmp_path, eval_main, capsys):
    root = tmp_path / "REDS"
    pairs = []
    for k, clip in enumerate(REDS4):
        hr = clip_frames(10 + k, h=32, w=40)
        lr = np.clip(pipeline.degrade_clip(hr, 4, "bi").astype(int) + (k + 1), 0, 255).astype(np.uint8)
        write_clip(root / "train_sharp" / clip, hr)
        write_clip(root / "train_sharp_bicubic" / "X4" / clip, lr)  # read, not made: brighter than ours
        pairs.append((lr, hr))
    eval_main(f"--weights={PTH}", "--dataset=reds4", f"--data_dir={root}", f"--out={tmp_path / 'out'}")
    out = capsys.readouterr().out
    assert "PSNR/SSIM on RGB, crop 0" in out and "test_BasicVSR_REDS.yml" in out
    result = json.loads((tmp_path / "out" / "metrics.json").read_text())
    psnr, ssim = expected(pairs, channel_y=False, crop=0)
    assert result["psnr"] == result["psnr_rgb"] == pytest.approx(psnr, abs=1e-6)
    assert result["ssim"] == result["ssim_rgb"] == pytest.approx(ssim, abs=1e-6)
    assert result["channel"] == "rgb" and result["crop_border"] == 0

    # the protocol's defaults give way to the flags, and the output says so
    eval_main(f"--weights={PTH}", "--dataset=reds4", f"--data_dir={root}", "--channel=y", "--crop_border=4")
    out = capsys.readouterr().out
    assert "PSNR/SSIM on Y, crop 4" in out and "overridden" in out
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["channel"] == "rgb"  # no --out: not written


@pytest.mark.parametrize(
    "args, words",
    [
        ((f"--weights={PTH}",), "--weights needs --dataset"),
        (("--weights=/nonexistent/x.pth", "--dataset=vid4", "--data_dir=/tmp"), "no weight file /nonexistent/x.pth"),
        ((f"--weights={PTH}", "--dataset=vid4", "--data_dir=/nonexistent/Vid4"), "no HR folder"),
        ((f"--weights={PTH}", "--dataset=vid4"), "needs --data_dir"),
        ((f"--weights={PTH}", "--dataset=vid4", "--data_dir=/tmp", "--workdir=/tmp/run"), "--workdir is for"),
        (("--model=no_such_model", "--dataset=vid4", "--data_dir=/tmp"), "no published model named 'no_such_model'"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(args, words, eval_main, capsys):
    with pytest.raises(SystemExit) as e:
        eval_main(*args)
    assert e.value.code == 1
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and err[0].startswith("vsr-eval: error: ") and words in err[0], err


def test_wrong_data_dir_in_a_subprocess_is_one_line(tmp_path):
    (tmp_path / "GT" / "calendar").mkdir(parents=True)  # a Vid4 tree lacking three clips
    proc = subprocess.run(
        [sys.executable, "-m", "vsr_jax.evaluate", f"--weights={PTH}", "--dataset=vid4", f"--data_dir={tmp_path}"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )
    assert proc.returncode == 1
    err = [ln for ln in proc.stderr.splitlines() if ln.strip() and not ln.startswith(("W", "I"))]
    assert len(err) == 1 and "lacks the clip(s) ['city', 'foliage', 'walk']" in err[0], proc.stderr[-2000:]


def test_reds4_reads_basicsrs_test_layout(tmp_path):
    from vsr_jax.evaluate import datasets

    for k, clip in enumerate(REDS4):  # BasicSR's REDS4 test folders: GT/ and sharp_bicubic/
        hr = clip_frames(k, n=2, h=16, w=20)
        write_clip(tmp_path / "GT" / clip, hr)
        write_clip(tmp_path / "sharp_bicubic" / clip, np.full((2, 4, 5, 3), k, np.uint8))
    pairs = datasets.named_pairs("reds4", str(tmp_path), scale=4, degradation="bi")
    assert [p.name for p in pairs] == list(REDS4) and [int(p.lr.max()) for p in pairs] == [0, 1, 2, 3]
    bd = datasets.named_pairs("reds4", str(tmp_path), scale=4, degradation="bd")  # not BD: made from HR
    np.testing.assert_array_equal(bd[1].lr, pipeline.degrade_clip(bd[1].hr, 4, "bd"))


def test_a_registry_files_published_score_is_printed_beside_ours(vid4, tmp_path, eval_main, capsys, monkeypatch):
    import dataclasses

    from vsr_jax.pretrained import importer, registry

    spec = importer.infer_spec(importer.read_state_dict(str(PTH)))
    entry = dataclasses.replace(registry.get("MSRResNet_x4"), name="tiny", file="msrresnet_x4.pth", kwargs=spec.kwargs)
    monkeypatch.setitem(registry.ENTRIES, "tiny", entry)  # the file's name is a published one
    eval_main(f"--weights={PTH}", "--dataset=vid4", f"--data_dir={vid4}", "--max_clips=1", f"--out={tmp_path}")
    assert f"published for tiny: {entry.score}" in capsys.readouterr().out
    result = json.loads((tmp_path / "metrics.json").read_text())
    assert result["registry"] == "tiny" and result["published"] == entry.score and list(result["clips"]) == ["calendar"]


def test_flip_seq_averages_the_clip_and_its_reverse():
    import jax.numpy as jnp

    from vsr_jax.evaluate import __main__ as vsr_eval

    class Running:  # a "recurrent" model: frame t's output is w × the sum of the frames so far
        def apply(self, variables, x, train=False):
            return jnp.cumsum(x, axis=1) * variables["params"]["w"]

    lr = np.array([10, 20, 40], np.uint8).reshape(3, 1, 1, 1) * np.ones((1, 1, 1, 3), np.uint8)
    out = vsr_eval.flip_seq_predictor(Running(), {"w": jnp.float32(0.5)})(lr)
    a, b, c = 10 / 255, 20 / 255, 40 / 255  # BasicSR: ½(out[:n] + out[n:].flip) over [a, b, c, c, b, a]
    want = 0.5 * 0.5 * np.array([3 * a + 2 * b + 2 * c, 2 * a + 3 * b + 2 * c, 2 * a + 2 * b + 3 * c])
    np.testing.assert_allclose(out[:, 0, 0, 0], want, rtol=1e-6)
    assert out.shape == (3, 1, 1, 3)
