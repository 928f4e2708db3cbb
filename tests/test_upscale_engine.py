"""The upscaler's model side (`vsr_jax.upscale.engine`): chunks with carried recurrent
state, overlapping windows, sliding windows, tiles, resume points — against one-shot
model calls."""

import json
import subprocess
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.conftest import ROOT, assert_user_xla_flags, optimised_env
from tests.upscale_helpers import fail_above, moving_frames, out_of_memory, tiny_config
from vsr_jax import config_lib, models
from vsr_jax.errors import UserError
from vsr_jax.models import frame_windows
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


def collect(up, frames, start=0, state=None, total=None):
    """{index: SR frame} of a stream, and the states it yielded {index: state}."""
    out, states = {}, {}
    for kind, i, value in up.stream(iter(frames), start, state, total=total):
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


class WindowMix(nn.Module):
    """A tiny sliding-window model with EDVR's dependency structure: output frame i is a
    function of frame i's `num_frame` window (`frame_windows.gather_windows`, the clip's
    ends padded by `padding`) alone — each window slot its own weights, a 3×3 conv, ×2."""

    padding: str = "reflection_circle"
    num_frame: int = 5
    scale: int = 2

    @property
    def temporal_radius(self) -> int:
        return self.num_frame // 2

    @nn.compact
    def __call__(self, x, train=False):
        win = frame_windows.gather_windows(x, self.num_frame, self.padding)  # (N, T, F, h, w, 3)
        n, t, f, h, w, c = win.shape
        win = jnp.moveaxis(win, 2, -2).reshape(n * t, h, w, f * c)  # the slots side by side
        y = nn.sigmoid(3.0 * nn.Conv(3, (3, 3))(win))
        y = jnp.repeat(jnp.repeat(y, self.scale, 1), self.scale, 2)
        return y.reshape(n, t, h * self.scale, w * self.scale, 3)


def window_mix(padding="reflection_circle", num_frame=5):
    """The model and its params (initialised in one compiled call: eagerly it takes seconds)."""
    model = WindowMix(padding, num_frame)
    return model, jax.jit(model.init)(jax.random.key(5), jnp.zeros((1, 1, 6, 5, 3)))["params"]


def sliding_frames(n, h=6, w=5):
    return np.random.default_rng(7).random((n, h, w, 3)).astype(np.float32)


_ONE_CALL = {}


def one_call(model, params, frames):
    """The model on the whole video at once, clipped as the upscaler clips: (T, H, W, 3)."""
    if model not in _ONE_CALL:  # (jitted: eager dispatch of the window gather is slower than compiling)
        _ONE_CALL[model] = jax.jit(lambda p, x: jnp.clip(model.apply({"params": p}, x), 0, 1))
    return np.asarray(_ONE_CALL[model](params, jnp.asarray(frames)[None]))[0]


@pytest.mark.parametrize(
    ("padding", "num_frame", "chunks", "lengths"),
    [
        ("reflection_circle", 5, (1, 2, 4), (1, 4, 5, 6, 7, 9)),
        ("replicate", 5, (2,), (1, 4, 9)),
        ("reflection_circle", 7, (2,), (6, 7, 8, 11)),
    ],
)
def test_sliding_calls_equal_one_call_on_the_whole_video(padding, num_frame, chunks, lengths):
    """Chunks from 1 frame up, lengths from 1 frame (shorter than a window) to chunk
    boundaries at every offset: the frames equal the model on the whole video, and every
    call has one shape (chunk + 2r) unless the video is shorter."""
    model, params = window_mix(padding, num_frame)
    assert engine.stream_mode(model, 5) == "sliding" and engine.stream_mode(model, 1) == "sliding"
    frames, r = sliding_frames(max(lengths)), num_frame // 2
    for chunk in chunks:
        up = engine.Upscaler(model, params, mode="sliding", chunk=chunk)
        calls = []
        up.process_chunk = lambda x, state=None, real=up.process_chunk, calls=calls: calls.append(len(x)) or real(x)
        for t in lengths:
            calls.clear()
            out, states = collect(up, frames[:t])
            assert sorted(out) == list(range(t)) and not states, (chunk, t)
            got = np.stack([out[i] for i in range(t)])
            np.testing.assert_allclose(got, one_call(model, params, frames[:t]), atol=1e-6, err_msg=f"{chunk} {t}")
            length = chunk + 2 * r
            assert calls == ([length] * len(calls) if t >= length else [t]), (chunk, t, calls)
    if num_frame != 5:
        return
    # tiles: the conv's radius is 1 LR pixel, so 1 pixel of context gives the same frames
    big = sliding_frames(7, 10, 12)
    tiled, _ = collect(engine.Upscaler(model, params, mode="sliding", chunk=2, tile=4, tile_pad=1), big)
    np.testing.assert_allclose(np.stack([tiled[i] for i in range(7)]), one_call(model, params, big), atol=1e-6)


def test_sliding_first_call_holds_the_2r_frames_reflection_circle_reaches():
    """With 'reflection_circle' frame 0's window is frames (4, 3, 0, 1, 2): a call of 2r = 4
    frames at the start (more than chunk 1 + r of right context) changes frame 0; the
    engine's first call holds 2r + 1 = 5 and equals the whole video (the same at the end)."""
    model, params = window_mix("reflection_circle")
    assert frame_windows.frame_indices(0, 9, 5, "reflection_circle") == [4, 3, 0, 1, 2]
    frames = sliding_frames(9)
    whole = one_call(model, params, frames)
    assert np.abs(one_call(model, params, frames[:4])[0] - whole[0]).max() > 0.05
    assert np.abs(one_call(model, params, frames[-4:])[-1] - whole[-1]).max() > 0.05
    np.testing.assert_allclose(one_call(model, params, frames[:5])[0], whole[0], atol=1e-6)
    out, _ = collect(engine.Upscaler(model, params, mode="sliding", chunk=1), frames)
    np.testing.assert_allclose(np.stack([out[i] for i in range(9)]), whole, atol=1e-6)


def test_sliding_resume_needs_frames_from_start_minus_r_and_repeats_the_same_calls():
    model, params = window_mix("reflection_circle")
    frames, r = sliding_frames(11), 2
    for chunk in (1, 3, 4):
        up = engine.Upscaler(model, params, mode="sliding", chunk=chunk)
        length = chunk + 2 * r
        full, _ = collect(up, frames)
        np.testing.assert_allclose(np.stack([full[i] for i in range(11)]), one_call(model, params, frames), atol=1e-6)
        for start in range(12):
            exact, bound = up.window_start(start, total=11), up.window_start(start)
            first = max(0, start // chunk * chunk - r)  # the call owning `start` begins there
            assert exact == (first if first + length <= 11 else max(0, 11 - length)), (chunk, start)
            if start == 11:
                assert not collect(up, frames[exact:], start, total=11)[0]
                continue
            assert bound <= exact and start - bound <= chunk + 2 * r, (chunk, start)
            for feed, total in ((exact, 11), (bound, None)):
                resumed, _ = collect(up, frames[feed:], start, total=total)
                assert sorted(resumed) == list(range(start, 11)), (chunk, start, total)
                for i in resumed:  # the same calls: bit for bit
                    np.testing.assert_array_equal(resumed[i], full[i], err_msg=f"{chunk} {start} {total}")
    # chunk 4: the job resumes on the chunk grid, from start - r (the last call: 11 - 8 = 3)
    up = engine.Upscaler(model, params, mode="sliding", chunk=4)
    assert [up.window_start(s, total=30) for s in (0, 4, 8, 24)] == [0, 2, 6, 22]
    assert up.window_start(8, total=11) == 3
    with pytest.raises(ValueError, match="fed from frame 6"):  # fed less than the last call needs
        collect(up, frames[6:], 8, total=30)
    with pytest.raises(ValueError, match="temporal_radius"):
        engine.Upscaler(nn.Dense(3), None, mode="sliding", chunk=4)


# -- out of device memory: retried with tiles -----------------------------------------------


def test_out_of_memory_retries_with_tiles_equal_to_that_tile_from_the_start():
    model, params = perturbed("srcnn", shape=(1, 1, 16, 16, 3))
    frames = moving_frames(5, 16, 24)
    logs = []
    up = engine.Upscaler(model, params, mode="frames", chunk=2, tile_pad=4, min_tile=4, log=logs.append)
    seen = fail_above(up, 16 * 16)
    got, _ = collect(up, frames)
    # whole 16×24 frames fail; tile 16 (+4 pad) is the whole frame again, skipped; tile 8 fits
    assert seen[0] == (16, 24) and set(seen[1:]) == {(16, 16)} and up.tile == 8
    assert logs == ["out of device memory at whole frames (16×24 LR px); using --tile=8 (--tile_pad=4)"]
    want, _ = collect(engine.Upscaler(model, params, mode="frames", chunk=2, tile=8, tile_pad=4), frames)
    for i in range(5):
        np.testing.assert_array_equal(got[i], want[i])


def test_out_of_memory_in_a_recurrent_model_retiles_only_with_a_fresh_state():
    model, params = perturbed("recurrent_gan")
    frames = moving_frames(6, 16, 24)
    kw = dict(mode="recurrent", chunk=3, tile_pad=4, min_tile=4)
    up = engine.Upscaler(model, params, **kw, log=lambda m: None)
    fail_above(up, 16 * 16)  # the first chunk: the state is made again for tiles of 8
    got, states = collect(up, frames)
    want, want_states = collect(engine.Upscaler(model, params, **kw, tile=8), frames)
    for i in range(6):
        np.testing.assert_array_equal(got[i], want[i])
    assert jax.tree.structure(states[3]) == jax.tree.structure(want_states[3])
    # running out in the second chunk: the state is laid out for whole frames; a line says what to do
    up = engine.Upscaler(model, params, **kw, log=lambda m: None)
    fail_above(up, 16 * 16, after_calls=1)
    with pytest.raises(UserError, match=r"recurrent model's video .*run again with --tile=8"):
        collect(up, frames)


def test_out_of_memory_below_the_smallest_tile_is_a_user_error():
    model, params = perturbed("srcnn", shape=(1, 1, 16, 16, 3))
    up = engine.Upscaler(model, params, mode="frames", chunk=2, tile_pad=4, min_tile=4)
    fail_above(up, 0)
    with pytest.raises(UserError, match=r"out of device memory even at --tile=4 .*--bf16"):
        collect(up, moving_frames(2, 16, 24))
    # other runtime errors are not retried
    up = engine.Upscaler(model, params, mode="frames", chunk=2)
    up._apply = lambda *a, **k: (_ for _ in ()).throw(out_of_memory("INTERNAL: something else"))
    with pytest.raises(jax.errors.JaxRuntimeError, match="something else"):
        collect(up, moving_frames(2, 16, 24))
    assert up.tile == 0


def test_smaller_tile_and_devices_used():
    assert engine.smaller_tile(0, 16, 24) == 16 and engine.smaller_tile(0, 1080, 1920) == 1024
    assert engine.smaller_tile(0, 16, 16) == 8 and engine.smaller_tile(64, 1080, 1920) == 32
    assert engine.devices_used("frames", 8, False) == 8 and engine.devices_used("recurrent", 8, False) == 1
    assert engine.devices_used("windows", 8, True) == 8 and engine.devices_used("sliding", 1, True) == 1
    assert engine.devices_used("windows", 8, False) == 8 and engine.devices_used("sliding", 8, False) == 8
