"""vsr-upscale on several local devices (`engine` module docstring): on 8 virtual CPU
devices, an image model's chunks (whole frames and tiles), a sliding-window model's and a
windowed model's calls on whole frames, and a recurrent model's tiles are split over the
devices, and the frames are bitwise those of one device; so are a job's on all devices and
on --devices=1."""

import json
import subprocess
import sys

import pytest

from tests.conftest import ROOT, assert_user_xla_flags, optimised_env

_CHECKS = r"""
import json, os, sys
import jax
import numpy as np
from tests.test_upscale_engine import collect, perturbed
from tests.upscale_helpers import moving_frames
from vsr_jax.upscale import engine

devices = jax.local_devices()
assert len(devices) == 8, devices
spread = []  # devices each call's input was placed on
real_put = engine.Upscaler._put
def put(self, x, axis):
    y = real_put(self, x, axis)
    spread.append(len(y.sharding.device_set) if hasattr(y, "sharding") else 0)
    return y
engine.Upscaler._put = put

def compare(kind, mode, frames, **kw):
    model, params = perturbed(kind, shape=(1, 1 if mode == "frames" else 2, 16, 16, 3))
    return compare_model(model, params, mode, frames, **kw)

def compare_model(model, params, mode, frames, **kw):
    one, _ = collect(engine.Upscaler(model, params, mode=mode, **kw), frames)
    spread.clear()
    many_up = engine.Upscaler(model, params, mode=mode, devices=devices, **kw)
    many, _ = collect(many_up, frames)
    assert sorted(one) == sorted(many) == list(range(len(frames)))
    same = all(np.array_equal(one[i], many[i]) for i in one)
    return {"same": same, "max_diff": max(int(np.abs(one[i].astype(int) - many[i].astype(int)).max()) for i in one),
            "devices": sorted(set(spread)), "used": many_up.num_devices}

frames = moving_frames(7, 16, 24)
out = {
    # 5 frames a chunk (not a multiple of 8), the last chunk 2 frames: padded with repeats
    "frames": compare("srcnn", "frames", frames, chunk=5),
    "frames_tiled": compare("srcnn", "frames", frames, chunk=5, tile=8, tile_pad=4, tile_batch=3),
    "xla_flags": os.environ["XLA_FLAGS"],
}
from tests.test_upscale_engine import sliding_frames, window_mix
# 11 calls of 1 + 2·2 frames (the last ones repeat: chunk < r): a group of 8, then 3 padded to 8
out["sliding"] = compare_model(*window_mix(), "sliding", sliding_frames(11, 6, 5), chunk=1)
if sys.argv[1] == "full":
    # 3 tiles (8 LR px + 4 of context) a frame, each with its own state: a call of 8 (5 repeats), 1 a device
    out["recurrent_tiled"] = compare("recurrent_gan", "recurrent", frames[:6], chunk=3, tile=8, tile_pad=4)
    out["recurrent_whole"] = compare("recurrent_gan", "recurrent", frames[:6], chunk=3)
    # 3 overlapping windows of 4 frames, cross-faded: one group, padded to 8
    out["windows"] = compare("convlstm_bi", "windows", frames, chunk=4, overlap=1)

    # a job on all 8 devices (its default chunk 4 rounded up to 8) against one on --devices=1
    import tempfile
    from tests.upscale_helpers import write_video
    from vsr_jax import video_io
    from vsr_jax.upscale import job
    with tempfile.TemporaryDirectory() as tmp:
        write_video(os.path.join(tmp, "in.mp4"), moving_frames(11, 16, 24))
        model = job.Model(*perturbed("srcnn", shape=(1, 1, 16, 16, 3)), 1, "srcnn")
        pngs = []
        for n in (0, 1):
            options = job.Options(progress=False, devices=n)
            out["job_%d" % n] = job.describe_devices(model, options)
            job.run(model, os.path.join(tmp, "in.mp4"), os.path.join(tmp, "out%d" % n), options, log=lambda m: None)
            pngs.append([video_io.read_image(f) for f in video_io.image_files(os.path.join(tmp, "out%d" % n))])
        out["job_same"] = len(pngs[0]) == 11 and all(np.array_equal(a, b) for a, b in zip(*pngs))
print(json.dumps(out))
"""


def _run(which: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _CHECKS, which], cwd=ROOT, capture_output=True, text=True, timeout=600,
        env=optimised_env(PYTHONPATH=str(ROOT), XLA_FLAGS="--xla_force_host_platform_device_count=8"),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert_user_xla_flags(out.pop("xla_flags"))
    for name, result in out.items():
        if isinstance(result, dict):
            assert result["same"], (name, result)
    return out


def test_eight_devices_give_an_image_models_frames_of_one():
    out = _run("quick")
    assert out["frames"]["devices"] == [8] and out["frames"]["used"] == 8
    assert out["frames_tiled"]["devices"] == [8]
    assert out["sliding"]["devices"] == [8] and out["sliding"]["used"] == 8


@pytest.mark.slow  # ~45 s: a recurrent model compiled for 8 devices, and two jobs
def test_eight_devices_give_a_recurrent_models_tiles_and_a_jobs_frames_of_one():
    out = _run("full")
    assert out["job_same"] and out["job_0"] == "frames mode on 8 cpu devices"
    assert out["job_1"] == "frames mode on 1 cpu device"
    assert out["recurrent_tiled"]["devices"] == [8] and out["recurrent_tiled"]["used"] == 8
    assert out["recurrent_whole"]["devices"] == [1] and out["recurrent_whole"]["used"] == 1
    assert out["windows"]["devices"] == [8] and out["windows"]["used"] == 8
