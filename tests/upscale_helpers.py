"""What the upscaler tests share: small checkpoints written directly (random, perturbed
params: no training needed) and short videos encoded with PyAV, some with audio and
variable-frame-rate timestamps."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np

from tests.conftest import load_config
from vsr_jax import config_lib
from vsr_jax.upscale import bench

TINY_MODELS = {
    "srcnn": dict(model={"name": "srcnn"}, num_frames=1),
    "recurrent_gan": dict(
        model={"name": "recurrent_gan", "features": 8, "num_blocks": 1, "flow_features": (8, 8, 8, 8)}, num_frames=5
    ),
    "convlstm_bi": dict(
        model={
            "name": "convlstm_vsr",
            "features": 8,
            "extract_blocks": 1,
            "recon_blocks": 1,
            "flow_features": (8, 8, 8, 8),
            "bidirectional": True,
        },
        num_frames=5,
    ),
}


def tiny_config(kind: str, scale: int = 2):
    spec = TINY_MODELS[kind]
    config = load_config("unet")
    config.model = config_lib.ml_collections.ConfigDict(spec["model"])
    config.data.scale = scale
    config.data.num_frames = spec["num_frames"]
    config.data.patch_size = 16
    return config


def write_checkpoint(workdir, kind: str, scale: int = 2, seed: int = 0) -> None:
    """A run folder with one checkpoint (step 1) of a tiny `kind` model, every weight perturbed."""
    bench.write_random_checkpoint(str(workdir), tiny_config(kind, scale), noise=0.03, step=1, seed=seed)


ASS_HEADER = b"""[Script Info]
ScriptType: v4.00+
PlayResX: 384
PlayResY: 288

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, \
Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, \
MarginV, Encoding
Style: Default,Arial,16,&Hffffff,&Hffffff,&H0,&H0,0,0,0,0,100,100,0,0,1,1,0,2,10,10,10,0

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
"""


def moving_frames(n: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    """n smooth RGB frames (n, h, w, 3) uint8 of a pattern that moves a pixel per frame."""
    rng = np.random.default_rng(seed)
    big = rng.random((h // 4 + 8, (w + n) // 4 + 8, 3))
    import cv2

    big = cv2.resize(big, (big.shape[1] * 4, big.shape[0] * 4), interpolation=cv2.INTER_CUBIC)
    return np.stack([np.clip(big[:h, i : i + w] * 255, 0, 255).astype(np.uint8) for i in range(n)])


def write_video(path, frames, *, pts=None, time_base=Fraction(1, 90000), rate=25, audio=False, codec="libx264",
                pix_fmt="yuv420p", options=None, rotation=0, bt709=False, faststart=False,
                subtitles=None, title=None):  # fmt: skip
    """Encodes frames (T, h, w, 3) uint8 (or uint16 for 10-bit pix_fmts) with timestamps
    `pts` (in `time_base`; default: constant rate), optionally a 48 kHz AAC sine track,
    a display rotation, BT.709 colour (matrix and tags), a subtitle track of two cues
    (`subtitles`: an encoder, e.g. "mov_text" for mp4, "subrip" for mkv) and a title."""
    import av

    frames = np.asarray(frames)
    if pts is None:
        pts = [round(i / rate / time_base) for i in range(len(frames))]
    with av.open(os.fspath(path), "w", options={"movflags": "faststart"} if faststart else {}) as out:
        v = out.add_stream(codec, rate=rate, options=options or {"crf": "10"})
        v.width, v.height, v.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        v.codec_context.time_base = time_base
        if rotation:
            v.set_display_rotation(rotation)
        if bt709:
            cc = v.codec_context
            cc.colorspace = cc.color_primaries = cc.color_trc = cc.color_range = 1
        a = None
        if audio:
            a = out.add_stream("aac", rate=48000)
            a.layout = "stereo"
            a.metadata["language"] = "eng"
        sub = None
        if subtitles:
            sub = out.add_stream(subtitles)
            sub.codec_context.subtitle_header = ASS_HEADER
            sub.metadata["language"] = "eng"
        if title:
            out.metadata["title"] = title
        fmt = "rgb24" if frames.dtype == np.uint8 else "rgb48le"
        for p, f in zip(pts, frames, strict=True):
            frame = av.VideoFrame.from_ndarray(f, format=fmt)
            if bt709:
                frame = frame.reformat(format=pix_fmt, dst_colorspace="ITU709", dst_color_range="MPEG", threads=1)
            else:  # converted here, one thread: PyAV's default threaded conversion is not deterministic
                frame = frame.reformat(format=pix_fmt, threads=1)
            frame.pts, frame.time_base = int(p), time_base
            out.mux(v.encode(frame))
        out.mux(v.encode(None))
        if a is not None:
            seconds = float(pts[-1] * time_base) + 0.5
            n = int(seconds * 48000) // 1024 * 1024
            t = np.arange(n) / 48000
            tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for i in range(0, n, 1024):
                af = av.AudioFrame.from_ndarray(np.stack([tone[i : i + 1024]] * 2), format="fltp", layout="stereo")
                af.sample_rate, af.pts = 48000, i
                out.mux(a.encode(af))
            out.mux(a.encode(None))
        if sub is not None:
            from av.subtitles.subtitle import SubtitleSet

            tb = sub.time_base
            for j, (t0, t1, text) in enumerate([(0.1, 0.3, "Hello"), (0.4, 0.6, "World")]):
                cue = SubtitleSet.create(
                    text=f"{j},0,Default,,0,0,0,,{text}".encode(), start=0, end=int((t1 - t0) / tb), pts=int(t0 / tb)
                )
                packet = sub.codec_context.encode_subtitle(cue)
                packet.stream, packet.time_base = sub, tb
                out.mux(packet)


def write_audio(path, seconds: float = 1.0):
    """An audio-only file (48 kHz AAC sine): a 'video' with zero video frames."""
    import av

    with av.open(os.fspath(path), "w") as out:
        a = out.add_stream("aac", rate=48000)
        a.layout = "mono"
        n = int(seconds * 48000) // 1024 * 1024
        tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(n) / 48000)).astype(np.float32)
        for i in range(0, n, 1024):
            af = av.AudioFrame.from_ndarray(tone[None, i : i + 1024], format="fltp", layout="mono")
            af.sample_rate, af.pts = 48000, i
            out.mux(a.encode(af))
        out.mux(a.encode(None))


def read_video(path):
    """(frames (T, H, W, 3) uint8, pts in seconds as Fractions) of a video's first video stream."""
    import av

    frames, times = [], []
    with av.open(os.fspath(path)) as c:
        for f in c.decode(video=0):
            frames.append(f.to_ndarray(format="rgb24", threads=1))
            times.append(f.pts * f.time_base)
    return np.stack(frames), times


def audio_packets(path, kind: str = "audio"):
    """[(pts seconds, bytes)] of the packets of a file's first `kind` ("audio"/"subtitle") stream."""
    import av

    with av.open(os.fspath(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        if not streams:
            return []
        return [(p.pts * p.time_base, bytes(p)) for p in c.demux(streams[0]) if p.size]


def out_of_memory(message: str = "RESOURCE_EXHAUSTED: Out of memory while trying to allocate 1.00GiB."):
    """The exception XLA raises when a device runs out of memory."""
    import jax

    return jax.errors.JaxRuntimeError(message)


def fail_above(upscaler, max_pixels: int, after_calls: int = 0) -> list:
    """Makes `upscaler`'s jitted model call raise XLA's out-of-memory error for tile windows
    of more than `max_pixels` LR pixels (from its `after_calls`-th call on); returns the
    (h, w) of every window it was called with, failures included."""
    real, seen = upscaler._apply, []

    def apply(params, x, state, max_value):
        seen.append(tuple(x.shape[2:4]))
        if len(seen) > after_calls and x.shape[2] * x.shape[3] > max_pixels:
            raise out_of_memory()
        return real(params, x, state, max_value=max_value)

    upscaler._apply = apply
    return seen


def failing_upscalers(monkeypatch, max_pixels: int) -> list:
    """Every `engine.Upscaler` made from now on fails as `fail_above` says; returns the
    windows each was called with (one list per upscaler)."""
    from vsr_jax.upscale import engine

    real_init, calls = engine.Upscaler.__init__, []

    def init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        calls.append(fail_above(self, max_pixels))

    monkeypatch.setattr(engine.Upscaler, "__init__", init)
    return calls
