"""Every encoder vsr-upscale offers writes a video that decodes back to the model's frames,
and `--bf16` upscales close to float32; float16 is refused (not offered).

libx264 is covered in test_upscale_job; here x265, SVT-AV1 and VP9, each once, on a
6-frame 32×24 clip with a tiny SRCNN.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import av
import jax.numpy as jnp
import numpy as np
import pytest

from tests import upscale_helpers as uh
from tests.conftest import ROOT, override
from vsr_jax import config_lib, models, video_io
from vsr_jax.errors import ConfigError
from vsr_jax.evaluate.runs import load_run
from vsr_jax.upscale import job


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(run folder, float32 job.Model, clip path, the model's float frames (6, 48, 64, 3) in [0, 255])."""
    root = tmp_path_factory.mktemp("codecs")
    uh.write_checkpoint(root / "srcnn", "srcnn")
    config, model, params, _ = load_run(str(root / "srcnn"), None)
    uh.write_video(root / "clip.mp4", uh.moving_frames(6, 24, 32), codec="libx264", options={"crf": "0"})
    lr, _ = uh.read_video(root / "clip.mp4")  # the decoded input: what the job sees
    sr = np.asarray(model.apply({"params": params}, jnp.asarray(lr, jnp.float32)[None] / 255.0))[0]
    float_sr = np.clip(sr, 0.0, 1.0) * 255.0
    return root / "srcnn", job.Model(model, params, int(config.data.num_frames), "srcnn"), root / "clip.mp4", float_sr


def psnr(a, b):
    return 10 * np.log10(255.0**2 / np.mean((np.asarray(a, float) - np.asarray(b, float)) ** 2))


def luma(rgb):
    return np.asarray(rgb, float) @ np.array([0.299, 0.587, 0.114])


# (encoder, output, stream codec name). The tiny random SRCNN's output is noise-like in colour,
# so 4:2:0 chroma alone limits RGB PSNR to ~31 dB (x264 too); luma PSNR measures the codec.
CODECS = [("libx265", "out.mp4", "hevc"), ("libsvtav1", "out.mkv", "av1"), ("libvpx-vp9", "out.mkv", "vp9")]


@pytest.mark.parametrize(("codec", "name", "stream_codec"), CODECS, ids=[c[0] for c in CODECS])
def test_every_offered_encoder_writes_the_models_frames(setup, tmp_path, codec, name, stream_codec):
    if codec not in av.codecs_available:
        pytest.skip(f"this PyAV's FFmpeg has no {codec} encoder")
    _, model, clip, float_sr = setup
    out = tmp_path / name
    report = job.run(model, str(clip), str(out), job.Options(progress=False, codec=codec), log=lambda m: None)
    assert report.frames == 6 and sorted(os.listdir(tmp_path)) == [name]  # no work folder left
    with av.open(str(out)) as c:
        assert [(s.type, s.codec_context.codec.canonical_name) for s in c.streams] == [("video", stream_codec)]
    frames, times = uh.read_video(out)
    assert frames.shape == (6, 48, 64, 3)
    assert times == uh.read_video(clip)[1]  # 25 fps, from 0
    # at the default --crf=18; measured 40.2 (x265), 41.8 (SVT-AV1), 41.3 (VP9), x264 39.5
    assert psnr(luma(frames), luma(float_sr)) > 37, psnr(luma(frames), luma(float_sr))


def test_bf16_flag_upscales_close_to_float32(setup, tmp_path):
    workdir, _, clip, float_sr = setup
    out = tmp_path / "frames"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "vsr_jax.upscale",
            "--noprogress",
            "--bf16",
            str(clip),
            "-o",
            str(out),
            f"--workdir={workdir}",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert re.search(r"model: srcnn x2 .* \(bfloat16\)", proc.stderr), proc.stderr[-2000:]
    names = sorted(n for n in os.listdir(out) if n.endswith(".png"))
    assert len(names) == 6
    sr = np.stack([video_io.read_image(str(out / n)) for n in names]).astype(float)
    # bfloat16 keeps 8 significant bits: within 3 of 255 levels of the float frames (measured
    # max 1.97, mean 0.28, 55.9 dB); float32 gives exactly their rounding, so the flag is seen
    diff = np.abs(sr - float_sr)
    assert np.abs(sr - np.round(float_sr)).max() > 0, "--bf16 gave float32's frames: did it take effect?"
    assert diff.max() <= 3 and diff.mean() < 0.5 and psnr(sr, float_sr) > 50, (diff.max(), diff.mean())


def test_float16_is_not_offered():
    with pytest.raises(ValueError, match=r"float16 is not offered.*use bfloat16"):
        models.create_model("srcnn", 2, {"dtype": "float16"})
    with pytest.raises(ConfigError, match=r"model.dtype must be one of \['bfloat16', 'float32'\], got 'float16'"):
        config_lib.validate(override(uh.tiny_config("srcnn"), **{"model.dtype": "float16"}))
