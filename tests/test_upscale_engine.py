"""The upscaler's model side (`vsr_jax.upscale.engine`): chunks with carried recurrent
state, overlapping windows, tiles, resume points — against one-shot model calls."""

import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.conftest import ROOT, assert_user_xla_flags, optimised_env
from tests.upscale_helpers import moving_frames, tiny_config
from vsr_jax import config_lib, models
from vsr_jax.upscale import engine


def perturbed(kind, shape=(1, 2, 16, 16, 3), scale=2):
    config = tiny_config(kind, scale)
    model = models.create_model(config.model.name, scale, config_lib.model_kwargs(config))
    params = models.init_variables(model, jax.random.key(0), jnp.zeros(shape))["params"]
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(1), len(leaves))
    return model, jax.tree.unflatten(
        tree, [x + 0.03 * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys, strict=True)]
    )


def collect(up, frames, start=0, state=None):
    """{index: SR frame} of a stream, and the states it yielded {index: state}."""
    out, states = {}, {}
    for kind, i, value in up.stream(iter(frames), start, state):
        if kind == "frame":
            assert i not in out, f"frame {i} yielded twice"
            out[i] = value
        else:
            states[i] = value
    return out, states


def one_shot(model, params, frames, max_value=65535.0):
    x = jnp.asarray(frames, jnp.float32)[None] / max_value
    return np.asarray(model.apply({"params": params}, x))[0]


def model_state_carries_a_video_across_chunks(kind) -> float:
    """A video through the model in chunks, the state carried, equals one pass (to 1e-5);
    returns the largest difference."""
    model, params = perturbed("recurrent_gan" if kind == "recurrent_gan" else "convlstm_bi")
    if kind == "convlstm_fwd":
        model = model.clone(bidirectional=False)
        model, params = model, models.init_variables(model, jax.random.key(3), jnp.zeros((1, 2, 16, 16, 3)))["params"]
        params = jax.tree.map(lambda p: p + 0.03 * jax.random.normal(jax.random.key(4), p.shape), params)
    x = jnp.asarray(moving_frames(11, 12, 16), jnp.float32)[None] / 255.0
    with jax.default_matmul_precision("float32"):  # (GPUs default to TF32: other batches, other rounding)
        full = model.apply({"params": params}, x)
        state, parts = model.initial_state(x[:, 0]), []
        for a, b in [(0, 4), (4, 5), (5, 11)]:
            y, state = model.apply({"params": params}, x[:, a:b], state=state)
            parts.append(y)
    chunked = jnp.concatenate(parts, axis=1)
    assert float(jnp.abs(full - x.repeat(2, 2).repeat(2, 3)).mean()) > 0.02  # not the bicubic/identity
    np.testing.assert_allclose(np.asarray(chunked), np.asarray(full), atol=1e-5)
    return float(jnp.abs(chunked - full).max())


def recurrent_stream_equals_one_shot_and_yields_states_at_chunk_ends() -> float:
    """engine.Upscaler's recurrent stream equals one pass to the 16-bit output's step;
    returns the largest difference (in [0, 1])."""
    model, params = perturbed("recurrent_gan")
    frames = moving_frames(13, 12, 16).astype(np.uint16) * 257  # 16-bit levels: 1.5e-5 steps
    up = engine.Upscaler(model, params, mode="recurrent", chunk=4)
    out, states = collect(up, frames)
    assert sorted(out) == list(range(13)) and sorted(states) == [4, 8, 12]
    got = np.stack([out[i] for i in range(13)]).astype(np.float64) / 65535
    want = np.clip(one_shot(model, params, frames), 0, 1)
    worst = float(np.abs(got - want).max())
    assert worst <= 1.5e-5 + 1e-6, worst
    # restarting at frame 8 with the state yielded there gives the same frames
    resumed, _ = collect(up, frames[8:], start=8, state=states[8])
    assert sorted(resumed) == list(range(8, 13))
    for i in range(8, 13):
        np.testing.assert_array_equal(resumed[i], out[i])
    return worst


_CHUNK_CHECKS = """
import json, os
from tests import test_upscale_engine as t
diffs = {kind: t.model_state_carries_a_video_across_chunks(kind) for kind in ("recurrent_gan", "convlstm_fwd")}
diffs["stream"] = t.recurrent_stream_equals_one_shot_and_yields_states_at_chunk_ends()
print(json.dumps({"diffs": diffs, "xla_flags": os.environ["XLA_FLAGS"]}))
"""


def test_chunks_equal_one_pass_with_the_users_xla_settings():
    """README: a recurrent model's output over chunks equals one pass (to 1e-5). Checked in
    a process of its own with the XLA settings users run (default optimisations, YNNPACK
    dots), which the suite's own process does not have (tests/conftest.py)."""
    proc = subprocess.run(
        [sys.executable, "-c", _CHUNK_CHECKS], cwd=ROOT, env=optimised_env(PYTHONPATH=str(ROOT)),
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert_user_xla_flags(out["xla_flags"])
    print("largest |chunked - one pass|:", out["diffs"])


def test_tiles_equal_whole_frames_for_a_convolutional_model():
    # SRCNN 9-5-5: receptive-field radius 4 + 2 + 2 = 8 LR pixels; tile_pad 8 is enough
    model, params = perturbed("srcnn", shape=(1, 1, 16, 16, 3))
    frames = moving_frames(5, 37, 45).astype(np.uint16) * 257
    whole, _ = collect(engine.Upscaler(model, params, mode="frames", chunk=2), frames)
    tiled, _ = collect(
        engine.Upscaler(model, params, mode="frames", chunk=2, tile=10, tile_pad=8, tile_batch=3), frames
    )
    a, b = (np.stack([d[i] for i in range(5)]).astype(np.int64) for d in (whole, tiled))
    assert a.shape == (5, 74, 90, 3)
    assert np.abs(a - b).max() <= 1  # ≤ 1.5e-5 in [0,1]
    # too little context shows at the seams
    thin, _ = collect(engine.Upscaler(model, params, mode="frames", chunk=2, tile=10, tile_pad=1), frames)
    assert np.abs(np.stack([thin[i] for i in range(5)]).astype(np.int64) - a).max() > 100


def test_tile_grid_covers_every_pixel_once_with_one_window_shape():
    for h, w, tile, pad in [(37, 45, 10, 8), (16, 16, 16, 4), (100, 7, 32, 0), (5, 5, 0, 3)]:
        (wh, ww), tiles = engine.tile_grid(h, w, tile, pad)
        hits = np.zeros((h, w), int)
        for t in tiles:
            y0, y1, x0, x1 = t.dst
            hits[y0:y1, x0:x1] += 1
            sy, sx = t.src
            assert 0 <= sy <= y0 and y1 <= sy + wh <= h and 0 <= sx <= x0 and x1 <= sx + ww <= w
        assert (hits == 1).all()


def test_windows_cover_every_frame_cross_fade_and_resume_anywhere():
    model, params = perturbed("convlstm_bi")
    frames = moving_frames(23, 12, 16)
    up = engine.Upscaler(model, params, mode="windows", chunk=8, overlap=3)
    out, _ = collect(up, frames)
    assert sorted(out) == list(range(23))
    # outside any overlap a frame is its window's output; inside, between the two windows'
    first = np.clip(np.round(one_shot(model, params, frames[:8], 255.0) * 255), 0, 255)
    second = np.clip(np.round(one_shot(model, params, frames[5:13], 255.0) * 255), 0, 255)
    for i in range(5):
        np.testing.assert_array_equal(out[i], first[i])
    lo, hi = np.minimum(first[5:8], second[:3]), np.maximum(first[5:8], second[:3])
    got = np.stack([out[i] for i in range(5, 8)])
    assert (got >= lo - 1).all() and (got <= hi + 1).all() and (first[5:8] != second[:3]).any()
    for start in [1, 7, 12, 16, 19, 22]:
        feed = up.window_start(start)
        resumed, _ = collect(up, frames[feed:], start=start)
        assert sorted(resumed) == list(range(start, 23)), start
        for i in resumed:
            np.testing.assert_array_equal(resumed[i], out[i])


def test_short_video_and_self_ensemble():
    model, params = perturbed("recurrent_gan")
    frames = moving_frames(3, 12, 16)
    plain, _ = collect(engine.Upscaler(model, params, mode="recurrent", chunk=8), frames)
    ens, _ = collect(engine.Upscaler(model, params, mode="recurrent", chunk=8, self_ensemble=True), frames)
    assert sorted(ens) == [0, 1, 2] and ens[0].shape == (24, 32, 3)
    diff = np.abs(np.stack(list(ens.values())).astype(int) - np.stack(list(plain.values())).astype(int))
    assert 0 < diff.mean() < 20
    wins, _ = collect(engine.Upscaler(*perturbed("convlstm_bi"), mode="windows", chunk=8, overlap=2), frames)
    assert sorted(wins) == [0, 1, 2]


def test_bad_settings_raise():
    model, params = perturbed("srcnn", shape=(1, 1, 16, 16, 3))
    with pytest.raises(ValueError, match="overlap"):
        engine.Upscaler(model, params, mode="windows", chunk=8, overlap=5)
    with pytest.raises(ValueError, match="mode"):
        engine.Upscaler(model, params, mode="tiles", chunk=8)
    assert engine.stream_mode(model, 1) == "frames"
    assert engine.stream_mode(perturbed("recurrent_gan")[0], 5) == "recurrent"
    assert engine.stream_mode(perturbed("convlstm_bi")[0], 5) == "windows"
