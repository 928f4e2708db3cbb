"""The model side of the upscaler: a video's frames in, its super-resolved frames out, in
order, with bounded memory in both length and frame size.

How a video is cut depends on the model (see `stream_mode`):

* ``frames`` — single-image models (`config.data.num_frames == 1`): chunks of `chunk`
  frames are one batch; every frame is independent.
* ``recurrent`` — forward (causal) recurrent models (`carries_state`, e.g. recurrent_gan,
  convlstm_vsr): chunks of `chunk` frames, the recurrent state carried from one chunk to
  the next, so the frames equal those of one call on the whole video (to float rounding).
* ``windows`` — other video models (bidirectional convlstm_vsr): windows of `chunk` frames
  overlapping by `overlap` (≤ chunk/2). In an overlap the two windows' outputs are
  cross-faded with weights that ramp linearly across it, so no frame switches abruptly
  from one window to the next. The last window ends at the last frame (it overlaps its
  neighbour more). A frame sees at least `overlap` frames of context on each side, except
  near the ends of the video.
* ``sliding`` — sliding-window models (a `temporal_radius` r > 0, e.g. EDVR: output frame
  i is computed from frames i − r … i + r alone, padded by the model's own rule at the
  clip's ends): calls of L = `chunk` + 2r consecutive frames; call k owns the output
  frames [k·chunk, (k+1)·chunk) and sees frames [k·chunk − r, k·chunk − r + L) (from 0
  while k·chunk < r: the first call is frames [0, L)); the last is shifted back to end at
  the last frame (it owns every frame left), and a video shorter than L is one call. So
  every call that touches an end of the video holds at least 2r + 1 frames from that end
  (the most a padding rule reaches: BasicSR's ``reflection_circle`` and ``circle``
  read up to frame 2r), every owned frame has its r real neighbours
  or the video's own end, and the frames EQUAL one call on the whole video (to float
  rounding), for any chunk ≥ 1, with one compiled shape (L) except for videos shorter
  than L.

Large frames are cut into tiles of `tile`×`tile` LR pixels, each widened by `tile_pad`
pixels of context on every side (clamped to the frame: a tile at the border is shifted
inward, so every tile has one shape and one compiled program serves them all). Only the
tile's own area of the output is kept. A convolutional model whose receptive field
radius is at most `tile_pad` gives the same frames tiled as untiled; a recurrent model's
tiles each carry their own state (its receptive field grows with time, so tiles are an
approximation there: use a large `tile_pad`). Models with a large spatial receptive field
(EDVR's deformable offsets can point far, and its pyramid sees ×4 coarser) are likewise
only approximated by tiles: use whole frames (`tile` 0) where memory allows, or a large
`tile_pad`.

Devices (`devices`: a list of local devices; default one): which modes use how many.

* ``frames`` — every device: each chunk's frames are split over the devices (the frame
  axis of the batch sharded over a 1-D mesh, padded to a multiple of the device count
  with repeats of the last frame, so one compiled shape serves every call); frames are
  independent, so the output equals one device's.
* ``windows`` and ``sliding`` on whole frames — every device: n consecutive calls (windows,
  or sliding calls of chunk + 2r frames) run at once, one a device (the last group padded
  with repeats); each call sees only its own frames, so the output equals one device's.
* ``recurrent``, ``windows``, ``sliding`` with tiles (`tile` > 0 and more than one tile
  per frame) — every device: the tile batches are split over the devices (`tile_batch`
  is rounded up to a multiple of the device count, the last batch padded with repeats);
  each tile carries its own state and sees only its own window, so the output equals one
  device's. (The recurrent state is kept per tile batch: `job` starts a recurrent job
  over when it is resumed with another device count.)
* ``recurrent`` on whole frames — one device: each chunk depends on the one before through
  the state, and splitting a frame's computation would change it. Use ``--tile`` to spread
  such a model over the devices (tiles see less context than whole frames: see above).

Out of device memory (XLA ``RESOURCE_EXHAUSTED``) during a chunk: the chunk is computed
again with tiles — from whole frames the largest power of two below the frame's longer
side, else half the tile — halving until it fits, down to `min_tile` LR pixels (then a
UserError). `tile_pad` is kept (a convolutional model with a receptive field radius ≤
`tile_pad` gives the same frames). The tile it settles on is reported once (`log`) and
kept for the rest of the video (`Upscaler.tile`; `job` records it for resume). A
recurrent model's state is laid out per tile batch: it is retiled only on the stream's
first chunk with a fresh state (the state is made again from the first frame, as a run
with that tile from the start would); later, or on a resumed state, it stops with a
UserError that names the tile to rerun with.

Frames are uint8, uint16 or float32 ([0, 1]) (T, h, w, 3) numpy arrays in, the same dtype
(T, H, W, 3) out (rounded to the integer levels, or clipped floats).
This module does not import TensorFlow or the training code.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from vsr_jax.errors import UserError
from vsr_jax.models import ensemble, layers

MODES = ("frames", "recurrent", "windows", "sliding")


def temporal_radius(model) -> int:
    """r of a sliding-window model (frame i from frames i − r … i + r); 0 for others."""
    return int(getattr(model, "temporal_radius", 0) or 0)


def stream_mode(model, num_frames: int) -> str:
    """How a video is cut for `model`: 'frames', 'recurrent', 'windows' or 'sliding'
    (module docstring)."""
    if temporal_radius(model) > 0:
        return "sliding"
    if num_frames <= 1:
        return "frames"
    return "recurrent" if getattr(model, "carries_state", False) else "windows"


def devices_used(mode: str, num_devices: int, tiled: bool) -> int:
    """How many of `num_devices` a stream in `mode` uses (module docstring): every one, except
    a recurrent model on whole frames, which uses one."""
    return 1 if mode == "recurrent" and not tiled else num_devices


def is_out_of_memory(error: BaseException) -> bool:
    """An XLA runtime error that says the device ran out of memory."""
    if not isinstance(error, jax.errors.JaxRuntimeError):
        return False
    text = str(error)
    return "RESOURCE_EXHAUSTED" in text or "Out of memory" in text or "out of memory" in text


def smaller_tile(tile: int, h: int, w: int) -> int:
    """The next tile to try after running out of memory at `tile` (0: whole h×w frames):
    the largest power of two below the longer side, or half the tile."""
    if tile <= 0:
        return 1 << max(0, (max(h, w) - 1).bit_length() - 1)
    return tile // 2


@dataclasses.dataclass(frozen=True)
class Tile:
    """One tile: the window the model sees (`src`) and where its own area goes (`dst`).

    src = (y0, x0) of a (win_h, win_w) LR window; dst = (y0, y1, x0, x1) of the LR area it
    owns; the area sits at (dst.y0 − src.y0, dst.x0 − src.x0) inside the window.
    """

    src: tuple[int, int]
    dst: tuple[int, int, int, int]


def tile_grid(h: int, w: int, tile: int, pad: int) -> tuple[tuple[int, int], list[Tile]]:
    """((win_h, win_w), tiles) covering an h×w frame; one whole-frame tile when `tile` is 0
    or the padded tile would cover the frame anyway."""

    def axis(n):
        if tile <= 0 or tile + 2 * pad >= n:
            return n, [(0, 0, n)]
        win = tile + 2 * pad
        return win, [(min(max(s - pad, 0), n - win), s, min(s + tile, n)) for s in range(0, n, tile)]

    win_h, rows = axis(h)
    win_w, cols = axis(w)
    tiles = [Tile((sy, sx), (y0, y1, x0, x1)) for sy, y0, y1 in rows for sx, x0, x1 in cols]
    return (win_h, win_w), tiles


class Upscaler:
    """Super-resolves a stream of LR frames with a model and its params.

    Args:
      model, params: a registered generator (see `vsr_jax.models`) and its params.
      mode: 'frames', 'recurrent', 'windows' or 'sliding' (`stream_mode`).
      chunk: frames per model call (the window length in 'windows' mode; the frames a
        call owns in 'sliding' mode, which feeds it chunk + 2·temporal_radius).
      overlap: 'windows' mode: frames shared by neighbouring windows (≤ chunk // 2).
      tile, tile_pad, tile_batch: LR tile size (0: whole frames), context pixels around a
        tile, tiles per model call.
      self_ensemble: the mean over the 8 flips/transposes (EDSR; 8× the compute).
      devices: the devices to spread calls over (module docstring; default: one, the
        default device).
      min_tile: the smallest tile an out-of-memory retry tries (LR pixels).
      log: where the tile an out-of-memory retry settled on is reported (default: stderr).
    """

    def __init__(
        self,
        model,
        params,
        *,
        mode: str,
        chunk: int,
        overlap: int = 0,
        tile: int = 0,
        tile_pad: int = 16,
        tile_batch: int = 1,
        self_ensemble: bool = False,
        devices: list | None = None,
        min_tile: int = 32,
        log=None,
    ):
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        if chunk < 1:
            raise ValueError(f"chunk must be ≥ 1 frame, got {chunk}")
        if mode == "windows" and not 0 <= overlap <= chunk // 2:
            raise ValueError(f"overlap must be between 0 and chunk/2 = {chunk // 2} frames, got {overlap}")
        if mode == "sliding" and temporal_radius(model) < 1:
            raise ValueError(f"'sliding' mode needs a model with temporal_radius ≥ 1, got {temporal_radius(model)}")
        if tile < 0 or tile_pad < 0 or tile_batch < 1:
            raise ValueError(f"need tile ≥ 0, tile_pad ≥ 0, tile_batch ≥ 1; got {tile}, {tile_pad}, {tile_batch}")
        self.model, self.params, self.mode = model, params, mode
        self.chunk, self.overlap = int(chunk), int(overlap) if mode == "windows" else 0
        self.tile, self.tile_pad, self.tile_batch = int(tile), int(tile_pad), int(tile_batch)
        self.self_ensemble = self_ensemble
        self._transforms = ensemble.transforms(self_ensemble)
        self.radius = temporal_radius(model) if mode == "sliding" else 0
        self.scale = int(model.scale)
        self._apply = jax.jit(self._forward, static_argnames=("max_value",))
        self._init_state = jax.jit(self._initial_state)
        self.devices = list(devices) if devices else []
        self.min_tile, self._log = int(min_tile), log
        self._mesh = None
        if len(self.devices) > 1:
            self._mesh = Mesh(np.array(self.devices), ("d",))
        self._params_on: dict[bool, object] = {}

    @property
    def num_devices(self) -> int:
        """The devices this upscaler spreads its calls over (a recurrent model on whole
        frames: one of them; see `devices_used`)."""
        return devices_used(self.mode, max(1, len(self.devices)), self.tile > 0)

    # -- placing arrays on the devices --------------------------------------------------

    def _params(self, sharded: bool):
        """The params replicated over the mesh (`sharded` calls) or on the first device."""
        if not self.devices:
            return self.params
        if sharded not in self._params_on:
            where = NamedSharding(self._mesh, PartitionSpec()) if sharded else self.devices[0]
            self._params_on[sharded] = jax.device_put(self.params, where)
        return self._params_on[sharded]

    def _put(self, x: np.ndarray, axis: int | None):
        """x on the devices: split along `axis` over the mesh, or whole on the first device."""
        if not self.devices:
            return x
        if axis is None:
            return jax.device_put(x, self.devices[0])
        return jax.device_put(x, NamedSharding(self._mesh, PartitionSpec(*([None] * axis), "d")))

    def _split_axis(self, batch_size: int) -> int | None:
        """The axis of a (B, T, h, w, 3) call that is split over the devices, or None."""
        if self._mesh is None:
            return None
        if self.mode == "frames":
            return 1
        return 0 if batch_size > 1 and batch_size % len(self.devices) == 0 else None

    # -- the jitted model call on a batch of tile windows ---------------------------------

    def _initial_state(self, first):
        """State of every ensemble member for tile windows of first frames (B, h, w, 3) in [0,1]."""
        return [self.model.initial_state(layers.dihedral(first, k)) for k in self._transforms]

    def _forward(self, params, x, state, max_value):
        """x (B, T, h, w, 3) of levels 0..max_value -> (SR (B, T, H, W, 3) same dtype, new state)."""
        dtype = x.dtype
        x = x.astype(jnp.float32) / max_value
        if state is None:
            fn = lambda xk: self.model.apply({"params": params}, xk, train=False)  # noqa: E731
        else:
            fn = lambda xk, s: self.model.apply({"params": params}, xk, train=False, state=s)  # noqa: E731
        y, new_state = ensemble.dihedral_mean(fn, x, self._transforms, state)
        y = jnp.clip(y, 0.0, 1.0)
        if jnp.issubdtype(dtype, jnp.integer):
            y = jnp.round(y * max_value)
        y = y.astype(dtype)
        return y, new_state

    # -- one chunk of frames through every tile -------------------------------------------

    def initial_state(self, first_frame: np.ndarray) -> list:
        """The recurrent state before `first_frame` (h, w, 3): one entry per tile batch."""
        h, w = first_frame.shape[:2]
        (wh, ww), tiles = tile_grid(h, w, self.tile, self.tile_pad)
        max_value = _max_value(first_frame.dtype)
        states = []
        for batch in self._tile_batches(tiles):
            wins = np.stack([first_frame[t.src[0] : t.src[0] + wh, t.src[1] : t.src[1] + ww] for t in batch])
            wins = self._put(wins, self._split_axis(len(batch)))
            states.append(self._init_state(jnp.asarray(wins, jnp.float32) / max_value))
        return states

    def _tile_batches(self, tiles: list[Tile]) -> list[list[Tile]]:
        """Tiles in batches of `tile_batch`, the last padded with repeats (one compiled shape)."""
        size = min(self.tile_batch, len(tiles))
        if self._mesh is not None and self.mode != "frames" and len(tiles) > 1:
            n = len(self.devices)  # tile batches are what is split: a multiple of the device count
            size = min(-(-self.tile_batch // n) * n, -(-len(tiles) // n) * n)
        batches = [tiles[i : i + size] for i in range(0, len(tiles), size)]
        return [b + [b[-1]] * (size - len(b)) for b in batches]

    def process_chunk(
        self, frames: np.ndarray, state: list | None = None, fresh_state: bool = False
    ) -> tuple[np.ndarray, list | None]:
        """frames (T, h, w, 3) uint8/uint16 -> (SR (T, h·s, w·s, 3) same dtype, state after them).

        Out of device memory: retried with smaller tiles (module docstring); `fresh_state`:
        `state` is `initial_state(frames[0])`, so it may be made again for other tiles.
        """
        h, w = frames.shape[1:3]
        retiled_from = None
        while True:
            try:
                result = self._process_chunk(frames, state)
            except Exception as e:
                if not is_out_of_memory(e):
                    raise
                if retiled_from is None:
                    retiled_from = self.tile
                self._retile(h, w, e, state is not None and not fresh_state)
                if state is not None:
                    state = self.initial_state(frames[0])
                continue
            if retiled_from is not None:
                was = f"--tile={retiled_from}" if retiled_from else f"whole frames ({h}×{w} LR px)"
                line = f"out of device memory at {was}; using --tile={self.tile} (--tile_pad={self.tile_pad})"
                (self._log or _stderr)(line)
            return result

    def process_calls(self, calls: list[np.ndarray]) -> list[np.ndarray]:
        """SR of independent calls (each (T, h, w, 3), no state): on several devices and whole
        frames, calls of one shape run at once, one a device (padded with repeats of the last);
        otherwise, and after running out of memory, one `process_chunk` each."""
        n = len(self.devices)
        same = len({x.shape for x in calls}) == 1 and len({x.dtype for x in calls}) == 1
        if self._mesh is None or self.tile or not calls or not same:
            return [self.process_chunk(x)[0] for x in calls]
        batch = np.stack(calls + [calls[-1]] * (-len(calls) % n))
        try:
            y, _ = self._apply(self._params(True), self._put(batch, 0), None, max_value=_max_value(batch.dtype))
        except Exception as e:
            if not is_out_of_memory(e):
                raise
            return [self.process_chunk(x)[0] for x in calls]  # each retiles (process_chunk)
        return list(np.asarray(y)[: len(calls)])

    def _outputs(self, calls: Iterator[tuple]) -> Iterator[tuple]:
        """(call, SR of the call's frames) for calls (x, ...) in order, x (T, h, w, 3) or None
        (the previous call's frames again); on n devices and whole frames, n calls at once."""
        group_size = len(self.devices) if self._mesh is not None and not self.tile else 1
        last = None

        def run(group):
            nonlocal last
            ys = iter(self.process_calls([c[0] for c in group if c[0] is not None]))
            for c in group:
                if c[0] is not None:
                    last = next(ys)
                yield c, last

        group, computed = [], 0
        for call in calls:
            group.append(call)
            computed += call[0] is not None
            if computed == group_size:
                yield from run(group)
                group, computed = [], 0
        yield from run(group)

    def _retile(self, h: int, w: int, error: BaseException, has_state: bool) -> None:
        """Halves the tile after running out of memory, or says why it cannot."""
        window = tile_grid(h, w, self.tile, self.tile_pad)[0]
        tile = smaller_tile(self.tile, h, w)
        while tile >= self.min_tile and tile_grid(h, w, tile, self.tile_pad)[0] == window:
            tile //= 2  # (the padded tile would still cover the frame: the same call again)
        at = f"--tile={self.tile}" if self.tile else "whole frames"
        if tile < self.min_tile:
            raise UserError(
                f"out of device memory even at {at} ({h}×{w} LR frames; the smallest tile tried is "
                f"{self.min_tile}): try --bf16, a smaller --chunk or --tile_batch, or fewer --devices"
            ) from error
        if has_state:
            raise UserError(
                f"out of device memory at {at} in the middle of a recurrent model's video (its state is laid out "
                f"per tile): run again with --tile={tile} (the job starts over with that tile)"
            ) from error
        self.tile = tile

    def _process_chunk(self, frames: np.ndarray, state: list | None) -> tuple[np.ndarray, list | None]:
        t, h, w, _ = frames.shape
        s = self.scale
        (wh, ww), tiles = tile_grid(h, w, self.tile, self.tile_pad)
        max_value = _max_value(frames.dtype)
        out = np.empty((t, h * s, w * s, 3), frames.dtype)
        new_state = [] if state is not None else None
        if self._mesh is not None and self.mode == "frames" and t % len(self.devices):
            n = len(self.devices)  # the frames split evenly: pad with repeats of the last
            frames = np.concatenate([frames, np.repeat(frames[-1:], -(-t // n) * n - t, axis=0)])
        for b, batch in enumerate(self._tile_batches(tiles)):
            wins = np.stack([frames[:, t_.src[0] : t_.src[0] + wh, t_.src[1] : t_.src[1] + ww] for t_ in batch])
            axis = self._split_axis(len(batch))
            params = self._params(axis is not None)
            wins = self._put(wins, axis)
            y, st = self._apply(params, wins, None if state is None else state[b], max_value=max_value)
            if new_state is not None:
                new_state.append(st)
            y = np.asarray(y)[:, :t]
            for i, t_ in enumerate(batch):  # a repeated (padding) tile writes the same pixels again
                y0, y1, x0, x1 = t_.dst
                oy, ox = (y0 - t_.src[0]) * s, (x0 - t_.src[1]) * s
                out[:, y0 * s : y1 * s, x0 * s : x1 * s] = y[i, :, oy : oy + (y1 - y0) * s, ox : ox + (x1 - x0) * s]
        return out, new_state

    # -- a whole stream -------------------------------------------------------------------

    def stream(
        self, frames: Iterator[np.ndarray], start: int = 0, state: list | None = None, total: int | None = None
    ) -> Iterator[tuple]:
        """Super-resolves a stream of LR frames (h, w, 3); yields ('frame', index, SR frame)
        in order and, in 'recurrent' mode after every chunk, ('state', next index, state).

        `start`/`state` resume a stream: 'recurrent' mode continues from frame `start` (a
        multiple of `chunk`) with the state yielded there; 'windows' and 'sliding' modes
        need the frames from `window_start(start, total)` on and yield frames from `start`
        on (`total`: the video's frame count if known, the same in both calls; 'sliding'
        then needs fewer frames near the end); 'frames' mode has no state.
        """
        if self.mode == "windows":
            yield from self._stream_windows(frames, start)
            return
        if self.mode == "sliding":
            yield from self._stream_sliding(frames, start, total)
            return
        index = start
        for chunk in _chunks(frames, self.chunk):
            n = len(chunk)
            x = np.stack(chunk + [chunk[-1]] * (self.chunk - n))  # one compiled shape: pad the last chunk
            fresh = self.mode == "recurrent" and state is None
            if fresh:
                state = self.initial_state(x[0])
            y, state = self.process_chunk(x, state, fresh_state=fresh)
            for i in range(n):
                yield "frame", index + i, y[i]
            index += n
            if self.mode == "recurrent" and n == self.chunk:
                yield "state", index, state

    def window_start(self, start: int, total: int | None = None) -> int:
        """'windows'/'sliding' mode: the first frame a stream resumed at frame `start` must be
        fed from (other modes: `start`).

        'windows': one window before the first window that reaches past `start`: the last
        window of a video may be shifted back (it ends at the last frame) into that one's
        frames. 'sliding': the first frame of the call that owns `start` (start − r for a
        `start` on the chunk grid, the job's case), or of the last call, shifted back to end
        at the video's last frame, where `start` is in that one: with `total` (the video's
        frame count) exactly that; without, the earliest the last call could begin.
        """
        if self.mode == "sliding":
            length, first = self.chunk + 2 * self.radius, self._sliding_first(start // self.chunk)
            if total is None:
                return max(0, min(first, start + 1 - length))
            return first if first + length <= total else max(0, total - length)
        if self.mode != "windows":
            return start
        stride = self.chunk - self.overlap
        k = max(0, -(-(start - self.chunk + 1) // stride))  # the first window that ends after `start`
        return max(0, (k - 1) * stride)

    def _sliding_first(self, k: int) -> int:
        """'sliding': the first frame call k sees when the video goes on past it."""
        return max(0, k * self.chunk - self.radius)

    def _stream_sliding(self, frames: Iterator[np.ndarray], start: int, total: int | None) -> Iterator[tuple]:
        """Calls of chunk + 2r frames, each owning `chunk` frames (module docstring)."""
        for (_, owned), y in self._outputs(self._sliding_calls(frames, start, total)):
            for i, j in owned:
                yield "frame", i, y[j]

    def _sliding_calls(self, frames: Iterator[np.ndarray], start: int, total: int | None) -> Iterator[tuple]:
        """The calls of `_stream_sliding`, in order: (x (chunk + 2r, h, w, 3), or None for the
        previous call's frames again; [(frame index, index in the call) it yields])."""
        c, length = self.chunk, self.chunk + 2 * self.radius
        it = iter(frames)
        buf: list[np.ndarray] = []  # LR frames [buf_start, buf_start + len(buf))
        buf_start = self.window_start(start, total)
        ended, last_call, k = False, None, start // c
        while True:
            first = self._sliding_first(k)
            while not ended and buf_start + len(buf) < first + length:
                f = next(it, None)
                if f is None:
                    ended = True
                else:
                    buf.append(f)
            end = buf_start + len(buf)
            if k * c >= end:
                return
            if end >= first + length:  # a regular call: its last r frames are context only
                lo, hi, own_end = first, first + length, (k + 1) * c
            else:  # the input ended: one last call ends at the last frame and owns the rest
                lo, hi, own_end = end - length, end, end
                if lo < buf_start:  # a video shorter than one call (or fewer frames than `total` said)
                    if buf_start > 0:
                        raise ValueError(
                            f"the stream was fed from frame {buf_start}, but its last call needs frame "
                            f"{max(lo, 0)} on: give window_start and stream the video's true frame count, or none"
                        )
                    lo = 0
            owned = [(i, i - lo) for i in range(max(k * c, start), own_end)]
            if last_call != (lo, hi):  # (chunk < r: calls can repeat)
                last_call = lo, hi
                yield np.stack(buf[lo - buf_start : hi - buf_start]), owned
            else:
                yield None, owned
            if own_end == end and ended:
                return
            k += 1
            keep = max(0, min(self._sliding_first(k), k * c + 1 - length))  # a last call may begin there
            if keep > buf_start:
                buf, buf_start = buf[keep - buf_start :], keep

    def _stream_windows(self, frames: Iterator[np.ndarray], start: int) -> Iterator[tuple]:
        """Overlapping windows, cross-faded; frames before `start` are computed, not yielded."""
        pending: dict[int, np.ndarray] = {}  # index -> float SR frame, blended so far
        dtype = None
        for (x, win_start), y in self._outputs(self._window_calls(frames, start)):
            for i in sorted(k for k in pending if k < win_start):  # no later window reaches these
                out = pending.pop(i)
                if i >= start:
                    yield "frame", i, _to_dtype(out, dtype)
            dtype = x.dtype
            overlap = [i for i in range(win_start, win_start + len(x)) if i in pending]
            for j, i in enumerate(range(win_start, win_start + len(x))):
                if i in pending:  # cross-fade: the new window's weight ramps up across the overlap
                    a = (overlap.index(i) + 1) / (len(overlap) + 1)
                    pending[i] = (1 - a) * pending[i] + a * y[j].astype(np.float32)
                else:
                    pending[i] = y[j].astype(np.float32)
        for i in sorted(pending):
            if i >= start:
                yield "frame", i, _to_dtype(pending[i], dtype)

    def _window_calls(self, frames: Iterator[np.ndarray], start: int) -> Iterator[tuple]:
        """The windows of `_stream_windows`, in order: (x (chunk, h, w, 3), its first frame)."""
        w, stride = self.chunk, self.chunk - self.overlap
        first = self.window_start(start)
        it = iter(frames)
        buf: list[np.ndarray] = []  # LR frames [buf_start, buf_start + len(buf))
        buf_start = next_start = covered = first
        while True:
            for f in it:
                buf.append(f)
                if buf_start + len(buf) >= next_start + w:
                    break
            end = buf_start + len(buf)
            regular = end >= next_start + w
            if regular:
                win_start = next_start
            elif end > covered:  # the input ended: the last window ends at the last frame
                win_start = max(buf_start, end - w)
            else:
                return
            x = np.stack(buf[win_start - buf_start : win_start - buf_start + w])
            yield x, win_start
            covered = win_start + len(x)
            if not regular:
                return
            next_start += stride
            drop = win_start + 1 - buf_start  # keep what a last, shifted-back window may need
            buf, buf_start = buf[drop:], buf_start + drop


def _stderr(message: str) -> None:
    import sys

    print(message, file=sys.stderr, flush=True)


def _chunks(frames: Iterator[np.ndarray], n: int) -> Iterator[list[np.ndarray]]:
    chunk: list[np.ndarray] = []
    for f in frames:
        chunk.append(f)
        if len(chunk) == n:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _to_dtype(frame: np.ndarray, dtype) -> np.ndarray:
    """A blended float frame back to the stream's dtype (rounded to integer levels)."""
    return (np.round(frame) if np.issubdtype(dtype, np.integer) else frame).astype(dtype)


def _max_value(dtype) -> float:
    """The level of white: 255 (uint8), 65535 (uint16), 1.0 (float32 in [0, 1])."""
    if dtype == np.uint8:
        return 255
    if dtype == np.uint16:
        return 65535
    if dtype == np.float32:
        return 1.0
    raise ValueError(f"frames must be uint8, uint16 or float32, got {dtype}")
