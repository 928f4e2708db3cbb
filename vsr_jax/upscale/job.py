"""One upscaling job: a video (or folder of frames) through a model into a video (or a
folder of PNG frames), as a pipeline with bounded memory, resumable segment by segment.

Pipeline: a decode thread → a bounded queue → the model (main thread; `engine.Upscaler`)
→ a bounded queue → an encode thread. At most `queue` frames wait in each queue, so
memory does not grow with the length of the video.

Segments and resume: the output is encoded in segments of `segment_frames` frames, each
finished segment renamed into a work folder beside the output
(``.NAME.vsr-upscale/``) and recorded in its ``progress.json``, with the recurrent
state at its end (recurrent models). The same command run again after a crash, a kill or
Ctrl-C finds that folder and continues after the last finished segment; the frames are
the same as an uninterrupted run's (the state is restored bit for bit; overlapping
windows are recomputed; a sliding-window model's calls are the same calls, its context
frames before the segment decoded again). A work folder left by a different command (other input,
checkpoint or settings) is discarded; one vsr-upscale cannot have made (`paths`) is refused.
When every segment is done they are joined (no re-encoding) with the input's audio and
subtitle streams into a file inside the work folder, which is then renamed to the output:
an interrupted run never leaves a partial file at the output path.

Devices and memory: the job runs on `Options.devices` local devices (0: all; which modes
use them: `engine`). A chunk that runs out of device memory is computed again with tiles
(`engine`); the tile it settled on is recorded in ``progress.json`` with the next finished segment, so a
resumed run goes on with that tile, as the uninterrupted run would have.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import shutil
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from vsr_jax import fileio, video_io
from vsr_jax.errors import UserError
from vsr_jax.upscale import engine, paths

_END = object()


@dataclasses.dataclass
class Options:
    """Everything about a job besides input, output and model (the CLI's flags)."""

    chunk: int = 0  # 0: the mode's default (frames 4 (a multiple of the devices), recurrent 8, windows 16, sliding 8)
    overlap: int = 4
    tile: int = 0
    tile_pad: int = 16
    tile_batch: int = 1
    self_ensemble: bool = False
    segment_frames: int = 240
    queue: int = 16
    codec: str = ""  # "": from the output's extension
    crf: int | None = 18
    preset: str = "medium"
    pix_fmt: str = ""
    copy_streams: bool = True
    allow_truncated: bool = False
    folder_fps: float = 25.0
    progress: bool = True
    overwrite: bool = False  # replace an output vsr-upscale wrote (see `paths`)
    devices: int = 0  # local devices to use; 0: all
    min_tile: int = 32  # the smallest tile an out-of-memory retry tries (LR pixels)


DEFAULT_CHUNK = {"frames": 4, "recurrent": 8, "windows": 16, "sliding": 8}
CODEC_FOR_EXT = {".webm": "libvpx-vp9"}


@dataclasses.dataclass
class Report:
    """What a job did: frames, wall seconds and busy seconds of each pipeline stage
    (`first_chunk_s`: the model's first chunk, compilation included; `model_s`: the rest)."""

    output: str
    frames: int
    resumed_from: int
    wall_s: float
    decode_s: float
    model_s: float
    encode_s: float
    warnings: list
    first_chunk_s: float = 0.0

    @property
    def fps(self) -> float:
        return (self.frames - self.resumed_from) / max(self.wall_s, 1e-9)


@dataclasses.dataclass
class Model:
    """A loaded generator: what `run` needs from a checkpoint."""

    model: Any
    params: Any
    num_frames: int
    label: str  # e.g. "RUN@step" — part of the resume signature
    description: str = ""  # e.g. "model: srcnn x4 from RUN step 1000" (the CLI's start-up line)


def local_devices(count: int) -> list:
    """The first `count` local devices (0: all of them); a UserError if there are fewer."""
    import jax

    found = jax.local_devices()
    if count < 0 or count > len(found):
        raise UserError(f"--devices={count}: this host has {len(found)} local devices (0: all of them)")
    return found[: count or len(found)]


def describe_devices(model: Model, options: Options) -> str:
    """Which mode and how many devices a job with `options` uses, e.g. 'frames mode on 8 cpu
    devices' (`engine.devices_used`)."""
    mode = engine.stream_mode(model.model, model.num_frames)
    devices = local_devices(options.devices)
    used = engine.devices_used(mode, len(devices), options.tile > 0)
    text = f"{mode} mode on {used} {devices[0].platform} device{'s' if used > 1 else ''}"
    if used < len(devices):
        text += f" of {len(devices)} (a {mode} model on whole frames: one device; --tile spreads tiles over all)"
    return text


def is_video_path(path: str) -> bool:
    return path.lower().endswith(video_io.VIDEO_EXTENSIONS)


def _save_state(path: str, state) -> None:
    """A recurrent state (pytree of arrays, bfloat16 included) to an .npz, bit for bit."""
    import jax

    leaves = [np.asarray(x) for x in jax.tree.leaves(state)]
    dtypes = json.dumps([str(x.dtype) for x in leaves])
    arrays = {f"leaf_{i}": x.view(f"u{x.dtype.itemsize}") for i, x in enumerate(leaves)}  # raw bits
    with fileio.atomic_write(path, "wb") as f:
        np.savez(f, dtypes=np.array(dtypes), **arrays)


def _load_state(path: str, like):
    """The state saved by `_save_state`, in the tree structure of `like`."""
    import jax
    import jax.numpy as jnp

    with np.load(path) as z:
        dtypes = json.loads(str(z["dtypes"]))
        leaves = [jnp.asarray(z[f"leaf_{i}"].view(jnp.dtype(d))) for i, d in enumerate(dtypes)]
    return jax.tree.unflatten(jax.tree.structure(like), leaves)


def probe_input(source: str, options: Options) -> video_io.VideoInfo:
    """The input as a job reads it (`video_io.decode(info)` gives its frames): `video_io.probe`
    with the job's frame rate for folders and its policy for truncated files."""
    return video_io.probe(source, folder_fps=options.folder_fps, allow_truncated=options.allow_truncated)


class _Stop(Exception):
    """Another stage failed or the user interrupted: this stage stops quietly."""


def run(model: Model, source: str, output: str, options: Options, *, log: Callable[[str], None] = print) -> Report:
    """Upscales `source` into `output` (see the module docstring). Raises UserError for bad input."""
    t_start = time.perf_counter()
    to_video = is_video_path(output)
    paths.check_output(source, output, options.overwrite, to_video)
    info = probe_input(source, options)
    mode = engine.stream_mode(model.model, model.num_frames)
    devices = local_devices(options.devices)
    chunk = options.chunk or DEFAULT_CHUNK[mode]
    if not options.chunk and mode == "frames":  # a frame for each device at least: none idles
        chunk = -(-chunk // len(devices)) * len(devices)
    if mode == "windows" and options.overlap > chunk // 2:
        raise UserError(f"--overlap={options.overlap} is more than half of --chunk={chunk}; lower it")
    segment = max(chunk, -(-options.segment_frames // chunk) * chunk)  # a multiple of the chunk
    work = paths.work_dir(output)
    writer = None

    def settled(line: str) -> None:  # an out-of-memory retry settled on a tile: kept on resume
        writer.tile = upscaler.tile  # (recorded with the next finished segment)
        log(line)

    upscaler = engine.Upscaler(
        model.model,
        model.params,
        mode=mode,
        chunk=chunk,
        overlap=options.overlap,
        tile=options.tile,
        tile_pad=options.tile_pad,
        tile_batch=options.tile_batch,
        self_ensemble=options.self_ensemble,
        devices=devices if len(devices) > 1 else None,
        min_tile=options.min_tile,
        log=settled,
    )
    scale = upscaler.scale
    width, height = info.width * scale, info.height * scale
    settings = None
    if to_video:
        ext = os.path.splitext(output)[1].lower()
        codec = options.codec or CODEC_FOR_EXT.get(ext, "libx264")
        settings = video_io.EncodeSettings(codec, options.crf, options.preset, "")
        settings.pix_fmt = video_io.output_pix_fmt(codec, info, options.pix_fmt)
    signature = {
        "input": os.path.realpath(source),
        "input_bytes": os.path.getsize(source) if not info.is_folder else info.frames,
        "input_mtime": os.path.getmtime(source),
        "model": model.label,
        "mode": mode,
        "chunk": chunk,
        "segment": segment,
        "devices": len(devices) if mode == "recurrent" else None,  # the saved state's layout (tiles per batch)
        "options": {
            k: v
            for k, v in dataclasses.asdict(options).items()
            if k not in ("progress", "queue", "overwrite", "devices")
        },
        "encode": dataclasses.asdict(settings) if settings else "png",
    }
    resumed = _open_work_dir(work, signature, log)
    if resumed.get("tile") is not None:  # an earlier run ran out of memory and settled on this tile
        upscaler.tile = int(resumed["tile"])
    done_segments = resumed["segments"]
    start = resumed["frames"]  # the frames in the finished segments
    state = None
    if start and mode == "recurrent" and not resumed.get("complete"):
        with contextlib.closing(video_io.decode(info)) as frames:
            first = next(frames)[1]
        state = _load_state(os.path.join(work, f"state_{done_segments:05d}.npz"), upscaler.initial_state(first))
    if resumed.get("complete"):
        log(f"Resuming {output}: all {start} frames are done ({work}); joining them")
    elif start:
        log(f"Resuming {output} from frame {start} ({done_segments} finished segments in {work})")
    # ('sliding' without the frame count: a damaged file may decode fewer frames than it
    # holds packets; the few more frames this decodes are context, not computed)
    feed_start = upscaler.window_start(start)
    frames_dir = os.path.join(work, "frames")
    if not to_video:
        os.makedirs(frames_dir, exist_ok=True)

    writer = _SegmentWriter(work, info, width, height, settings, segment, mode, frames_dir, resumed)
    timings = {"decode": 0.0, "model": 0.0, "encode": 0.0}
    if not resumed.get("complete"):  # (a run stopped while joining the segments has nothing left to compute)
        timings = _pipeline(upscaler, info, writer, start, feed_start, state, options, output)
    total = writer.frames_done
    if total != info.frames and not options.allow_truncated:
        raise video_io.VideoError(f"{source}: decoded {total} frames, expected {info.frames}; is the file damaged?")
    warnings = _assemble(writer, source, output, info, options, to_video, frames_dir)
    shutil.rmtree(work, ignore_errors=True)
    for w in warnings:
        log(f"warning: {w}")
    return Report(
        output=output,
        frames=total,
        resumed_from=start,
        wall_s=time.perf_counter() - t_start,
        decode_s=timings["decode"],
        model_s=timings["model"],
        first_chunk_s=timings.get("first_chunk", 0.0),
        encode_s=timings["encode"],
        warnings=warnings,
    )


def _pipeline(upscaler, info, writer, start, feed_start, state, options, output) -> dict:
    """Decode thread → model (this thread) → encode thread; returns busy seconds per stage."""
    progress = _progress(info.frames, start, output, options.progress)
    q_in: queue.Queue = queue.Queue(maxsize=max(1, options.queue))
    q_out: queue.Queue = queue.Queue(maxsize=max(1, options.queue))
    stop = threading.Event()
    errors: list[BaseException] = []
    timings = {"decode": 0.0, "model": 0.0, "encode": 0.0}
    pts_of: dict[int, int] = {}

    def put(q, item):
        while True:
            if stop.is_set():
                raise _Stop
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def get(q):
        while True:
            if stop.is_set():
                raise _Stop
            try:
                return q.get(timeout=0.1)
            except queue.Empty:
                continue

    def decoder():
        try:
            frames = video_io.decode(info, feed_start)
            while True:
                t0 = time.perf_counter()
                item = next(frames, _END)
                timings["decode"] += time.perf_counter() - t0
                put(q_in, item)
                if item is _END:
                    return
        except _Stop:
            return
        except BaseException as e:  # noqa: BLE001 — handed to the main thread
            errors.append(e)
            stop.set()

    def encoder():
        try:
            while True:
                item = get(q_out)
                t0 = time.perf_counter()
                if item is _END:
                    writer.finish()
                    timings["encode"] += time.perf_counter() - t0
                    return
                kind, index, value = item
                if kind == "frame":
                    writer.frame(index, pts_of.pop(index), value)
                    progress.update(1)
                else:
                    writer.state(index, value)
                timings["encode"] += time.perf_counter() - t0
        except _Stop:
            return
        except BaseException as e:  # noqa: BLE001 — handed to the main thread
            errors.append(e)
            stop.set()

    def lr_frames():
        index = feed_start
        while True:
            t0 = time.perf_counter()
            item = get(q_in)
            timings["model"] -= time.perf_counter() - t0  # waiting for the decoder is not model time
            if item is _END:
                return
            pts, frame = item
            if index >= start:  # frames before `start` are context for a window, not output
                pts_of[index] = pts
            index += 1
            yield frame

    threads = [threading.Thread(target=decoder, daemon=True), threading.Thread(target=encoder, daemon=True)]
    for t in threads:
        t.start()
    try:
        try:
            events = upscaler.stream(lr_frames(), start, state)
            while True:
                t0 = time.perf_counter()
                event = next(events, _END)
                timings["model"] += time.perf_counter() - t0
                if "first_chunk" not in timings:  # compilation: reported apart from the steady state
                    timings["first_chunk"], timings["model"] = timings["model"], 0.0
                put(q_out, event)
                if event is _END:
                    break
        except _Stop:
            pass
        for t in threads:
            while t.is_alive():
                t.join(0.1)
    except BaseException:
        stop.set()
        for t in threads:
            t.join(5)
        writer.abort()
        progress.close()
        raise
    progress.close()
    if errors:
        writer.abort()
        raise errors[0]
    return timings


def _open_work_dir(work: str, signature: dict, log) -> dict:
    """The progress of an earlier run of the same job, or a fresh work folder."""
    sig_path, progress_path = os.path.join(work, "job.json"), os.path.join(work, "progress.json")
    if os.path.lexists(work):
        paths.check_work_dir(work)  # a planted or foreign folder is refused, not read or removed
        try:
            with open(sig_path) as f:
                same = json.load(f) == json.loads(json.dumps(signature))
            with open(progress_path) as f:
                progress = json.load(f)
        except (OSError, ValueError):
            same, progress = False, None
        if same and progress is not None:
            return progress
        log(f"discarding {work}: it was left by a run with other input, model or settings")
        paths.discard_work_dir(work)
    paths.make_work_dir(work)
    fileio.write_json(sig_path, signature, indent=1)
    progress = {"segments": 0, "frames": 0, "complete": False}
    fileio.write_json(progress_path, progress, indent=1)
    return progress


class _SegmentWriter:
    """The encode thread's side: frames into segment files (or PNGs), segment bookkeeping."""

    def __init__(self, work, info, width, height, settings, segment, mode, frames_dir, progress):
        self.work, self.info, self.settings, self.segment, self.mode = work, info, settings, segment, mode
        self.frames_dir = frames_dir
        self.subsampled = bool(settings) and any(settings.pix_fmt.startswith(p) for p in ("yuv420", "yuv422", "nv"))
        self.width, self.height = width, height
        self.enc_size = (width + width % 2, height + height % 2) if self.subsampled else (width, height)
        self.encoder = None
        self.current = None  # index of the segment being written
        self.finished = None  # a closed segment whose recurrent state has not arrived yet
        self.segments_done, self.frames_done = progress["segments"], progress["frames"]
        self.tile = progress.get("tile")  # the tile an out-of-memory retry settled on (None: the job's)

    def _seg_path(self, k: int) -> str:
        return os.path.join(self.work, f"seg_{k:05d}.mp4")

    def frame(self, index: int, pts: int, rgb: np.ndarray) -> None:
        k = index // self.segment
        if self.current != k:
            self.current = k
            if self.settings is not None:
                w, h = self.enc_size
                self.encoder = video_io.SegmentEncoder(self._seg_path(k) + ".part", self.info, w, h, self.settings)
        if self.settings is None:
            import cv2

            if not cv2.imwrite(os.path.join(self.frames_dir, f"frame_{index + 1:06d}.png"), rgb[..., ::-1]):
                raise UserError(f"cannot write frame {index + 1} into {self.frames_dir}; is the disk full?")
        else:
            if self.enc_size != (self.width, self.height):  # 4:2:0 needs even sizes: repeat the last row/column
                w, h = self.enc_size
                rgb = np.pad(rgb, ((0, h - self.height), (0, w - self.width), (0, 0)), mode="edge")
            self.encoder.write(pts, rgb)
        self.frames_done = index + 1
        if (index + 1) % self.segment == 0:
            self._close_segment(k)

    def _close_segment(self, k: int) -> None:
        if self.encoder is not None:
            self.encoder.close()
            os.replace(self._seg_path(k) + ".part", self._seg_path(k))
            self.encoder = None
        self.current = None
        if self.mode == "recurrent":
            self.finished = k  # committed when the state after it arrives
        else:
            self._commit(k + 1)

    def state(self, index: int, state) -> None:
        if self.finished is not None and index == (self.finished + 1) * self.segment:
            _save_state(os.path.join(self.work, f"state_{self.finished + 1:05d}.npz"), state)
            self._commit(self.finished + 1)
            self.finished = None

    def _commit(self, segments: int, complete: bool = False) -> None:
        """Records `segments` finished segments (the frames in them) in progress.json."""
        self.segments_done = segments
        progress = {"segments": segments, "frames": self.frames_done, "complete": complete}
        if self.tile is not None:
            progress["tile"] = self.tile
        fileio.write_json(os.path.join(self.work, "progress.json"), progress, indent=1)

    def finish(self) -> None:
        if self.current is not None:
            self._close_segment(self.current)
        segments = self.segments_done + (self.finished is not None)  # the last one needs no state after it
        self.finished = None
        self._commit(segments, complete=True)

    def segment_files(self) -> list[str]:
        return [self._seg_path(k) for k in range(self.segments_done)]

    def abort(self) -> None:
        if self.encoder is not None:
            self.encoder.abort()
            self.encoder = None
        if self.current is not None:
            part = self._seg_path(self.current) + ".part"
            if os.path.exists(part):
                os.remove(part)


def _assemble(writer, source, output, info, options, to_video, frames_dir) -> list[str]:
    """Joins the segments (+ the input's audio/subtitles) or marks the PNG folder, inside the
    work folder, then renames the result to the output (an output that appeared meanwhile is
    checked again: only what vsr-upscale wrote is replaced)."""
    out = os.path.abspath(output)
    paths.check_output(source, output, options.overwrite, to_video)
    if not to_video:
        paths.write_marker(frames_dir, writer.frames_done)
        if os.path.isdir(out) and not os.listdir(out):
            os.rmdir(out)
        elif os.path.isdir(out):  # checked above: vsr-upscale's own frames; removed with the work folder
            os.rename(out, os.path.join(writer.work, "replaced"))
        os.rename(frames_dir, out)
        return []
    joined = os.path.join(writer.work, "joined" + os.path.splitext(out)[1])
    try:
        warnings = video_io.remux(
            writer.segment_files(), None if info.is_folder else source, joined, copy_streams=options.copy_streams
        )
        os.replace(joined, out)
    finally:
        if os.path.exists(joined):
            os.remove(joined)
    if writer.enc_size != (writer.width, writer.height):
        warnings.append(
            f"{writer.settings.pix_fmt} needs even sizes: the {writer.width}×{writer.height} frames were padded to "
            f"{writer.enc_size[0]}×{writer.enc_size[1]} (last row/column repeated); --pix_fmt=yuv444p keeps the size"
        )
    return warnings


class _NoProgress:
    def update(self, n):
        pass

    def close(self):
        pass


def _progress(total: int, start: int, output: str, enabled: bool):
    if not enabled:
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, initial=start, unit="frame", desc=os.path.basename(output), file=sys.stderr, smoothing=0.1)
