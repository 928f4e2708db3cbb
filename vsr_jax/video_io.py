"""Reading and writing frames with PyAV (FFmpeg bundled in the wheel) and OpenCV; no TensorFlow here.

One decode path for everyone: `probe` + `decode` (the colour matrix and range named from the
frame's or stream's tags, 16-bit RGB for >8-bit sources, single-threaded swscale) and one
image reader, `read_image`. The upscaler uses them directly; training and evaluation read
uint8 through `iter_frames` / `read_frames`, which are `decode` + `to_uint8`. The upscaler's
writers live here too (over 500 lines, on purpose): they convert back with the same colour
matrix and range tables, so reading and writing cannot drift apart.

Input limit: no frame larger than `MAX_FRAME_PIXELS` (width × height = 8192 × 8192 =
67,108,864 pixels; 8K UHD, 7680 × 4320, is half of it) is decoded. The size is read from
the header first (PIL for images, the stream's codec parameters for videos) and FFmpeg's
decoder is opened with the same ``max_pixels``, so an oversized frame or a decompression
bomb (a small file whose header claims a huge image) is refused with a one-line
VideoError naming the file, its size and the limit, before any pixels are allocated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import re
import warnings
from collections.abc import Iterator, Sequence
from fractions import Fraction

import numpy as np

from vsr_jax.errors import UserError


class VideoError(UserError, ValueError):
    """A video file that is missing, unreadable or has no video stream."""


# One RGB copy of such a frame is 192 MiB (384 MiB at 16 bits) and a model's activations a
# multiple of that; far larger headers are almost always decompression bombs. Read at call
# time, so a test may lower it.
MAX_FRAME_PIXELS = 8192 * 8192


def _limit_text() -> str:
    limit = MAX_FRAME_PIXELS
    side = math.isqrt(limit)
    return f"{limit:,} pixels" + (f" ({side}×{side})" if side * side == limit else "")


def check_frame_size(what: str, width: int, height: int) -> None:
    """Raises VideoError when a `width` × `height` frame is over `MAX_FRAME_PIXELS`;
    `what` names it ("frame x.png is", "x.mp4 has frames of")."""
    pixels = int(width) * int(height)
    if pixels > MAX_FRAME_PIXELS:
        raise VideoError(
            f"{what} {width}×{height} = {pixels:,} pixels, over the limit of {_limit_text()}: "
            "downscale it (e.g. ffmpeg -vf scale=iw/2:-2) or split it into tiles first"
        )


def image_size(file: str) -> tuple[int, int]:
    """(width, height) of an image file from its header, without decoding the pixels.

    Raises VideoError for an unreadable file and for one over `MAX_FRAME_PIXELS`.
    """
    from PIL import Image

    try:
        # PIL warns above its own MAX_IMAGE_PIXELS (89 M), which is over ours: the refusal below says it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(file) as im:
                width, height = im.size
    except Image.DecompressionBombError as e:  # PIL refuses over 2 × its limit before telling the size
        raise VideoError(
            f"frame {file} is a decompression bomb or far too large ({e}); the limit is {_limit_text()}: "
            "downscale it or split it into tiles first"
        ) from e
    except OSError as e:  # also PIL's UnidentifiedImageError
        raise VideoError(f"cannot read frame {file} ({e}); replace or remove it") from e
    check_frame_size(f"frame {file} is", width, height)
    return width, height


def _ffmpeg_max_pixels(width: int, height: int) -> int:
    """FFmpeg's ``max_pixels`` for a stream of `width` × `height` (0: unknown): the limit
    plus headroom, as FFmpeg counts the padded buffer (rows rounded up to 64 pixels, h264's
    height to 16 rows)."""
    return MAX_FRAME_PIXELS + 80 * max(int(width), int(height), 16384)


def _limit_decoder(path: str, stream) -> None:
    """Refuses a video stream whose frames are over `MAX_FRAME_PIXELS` (from the codec
    parameters, before decoding) and makes FFmpeg refuse far larger frames met later
    (a size change mid-stream); callers check each decoded frame's size before converting it."""
    cc = stream.codec_context
    if cc.width and cc.height:
        check_frame_size(f"{path} has frames of", cc.width, cc.height)
    cc.options = {**cc.options, "max_pixels": str(_ffmpeg_max_pixels(cc.width or 0, cc.height or 0))}


VIDEO_EXTENSIONS = (".mp4", ".mkv", ".mov", ".webm", ".avi", ".m4v", ".mpg", ".mpeg", ".ts", ".y4m", ".wmv", ".flv")
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")


# -- the one decode path: probe + decode (the upscaler's reader), to_uint8 for training/eval --

# swscale's automatic threading (PyAV's default, threads=0) is not deterministic with this
# PyAV/FFmpeg (the same 10-bit frame converted twice can differ): one thread per conversion is
# exact; decoding and encoding still run in their own threads.
SWS_THREADS = 1

# AVColorSpace values (what frames and streams carry) -> the matrix swscale converts with
_MATRIX = {1: "ITU709", 5: "ITU601", 6: "ITU601", 7: "SMPTE240M", 9: "BT2020", 10: "BT2020"}


def _sws_colour(colorspace: int, color_range: int) -> tuple[str, str]:
    """(swscale matrix, range) for AVColorSpace / AVColorRange values: BT.601 and limited
    range unless the values say otherwise."""
    return _MATRIX.get(int(colorspace), "ITU601"), "JPEG" if int(color_range) == 2 else "MPEG"


def natural_key(name: str) -> list:
    """Sort key that puts frame2 before frame10."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def image_files(path: str) -> list[str]:
    """The image files of a folder of frames, in natural order."""
    return [
        os.path.join(path, n)
        for n in sorted((n for n in os.listdir(path) if n.lower().endswith(IMAGE_EXTENSIONS)), key=natural_key)
    ]


@dataclasses.dataclass
class VideoInfo:
    """What the upscaler needs to know about an input before the first frame.

    `frames`: the number of frames (counted by demuxing, not trusted from the header);
    `time_base`: the unit of the frame timestamps; `rate`: the nominal frame rate;
    `bit_depth`: 8 → frames are uint8, more → uint16 (full 16-bit range);
    colour tags are FFmpeg's integer codes (2 = unspecified); `rotation`: the display
    rotation in degrees (counter-clockwise), kept on the output.
    """

    path: str
    width: int
    height: int
    frames: int
    rate: Fraction
    time_base: Fraction
    pix_fmt: str
    bit_depth: int
    colorspace: int = 2
    color_range: int = 0
    color_primaries: int = 2
    color_trc: int = 2
    rotation: float = 0.0
    is_folder: bool = False

    @property
    def dtype(self):
        return np.uint8 if self.bit_depth <= 8 else np.uint16


def _bit_depth(fmt) -> int:
    return max(c.bits for c in fmt.components)


def probe(path: str | os.PathLike, *, folder_fps: float = 25.0, allow_truncated: bool = False) -> VideoInfo:
    """Opens a video file or a folder of frames and describes it (see `VideoInfo`).

    The video stream is demuxed once without decoding to count its frames; a file whose
    header promises more frames than it holds is reported as truncated (VideoError)
    unless `allow_truncated`. Raises VideoError with what to do for anything unreadable.
    """
    import av

    path = os.fspath(path)
    if os.path.isdir(path):
        files = image_files(path)
        if not files:
            raise VideoError(f"{path} holds no video frames ({', '.join(IMAGE_EXTENSIONS)})")
        first = read_image(files[0])
        rate = Fraction(folder_fps).limit_denominator(1001)
        return VideoInfo(
            path, first.shape[1], first.shape[0], len(files), rate, 1 / rate, "rgb",
            8 if first.dtype == np.uint8 else 16, is_folder=True,
        )  # fmt: skip
    if not os.path.exists(path):
        raise VideoError(f"input not found: {path}")
    if not os.path.isfile(path):
        raise VideoError(f"{path} is not a file or a folder of frames")
    if os.path.getsize(path) == 0:
        raise VideoError(f"{path} is empty (0 bytes); is the copy complete?")
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoError(f"{path} has no video stream")
            stream = container.streams.video[0]
            promised = int(stream.frames or 0)
            packets = sum(1 for p in container.demux(stream) if p.size)
        with av.open(path) as container:
            stream = container.streams.video[0]
            _limit_decoder(path, stream)
            frame = next(container.decode(stream), None)
            rate = stream.guessed_rate or stream.average_rate or Fraction(25)
            time_base = stream.time_base or 1 / Fraction(rate)
    except av.error.FFmpegError as e:
        raise VideoError(
            f"cannot read {path} as a video ({e.__class__.__name__}: {e.strerror}); is it a video file?"
        ) from e
    if frame is None or packets == 0:
        raise VideoError(f"{path} holds no video frames")
    if promised and packets < promised and not allow_truncated:
        raise VideoError(
            f"{path} is truncated: its header promises {promised} frames but only {packets} are in the file; "
            "re-copy it, or pass --allow_truncated to upscale what is there"
        )
    return VideoInfo(
        path=path,
        width=frame.width,
        height=frame.height,
        frames=packets,
        rate=Fraction(rate),
        time_base=Fraction(time_base),
        pix_fmt=frame.format.name,
        bit_depth=_bit_depth(frame.format),
        colorspace=int(frame.colorspace),
        color_range=int(frame.color_range),
        color_primaries=int(frame.color_primaries),
        color_trc=int(frame.color_trc),
        rotation=float(frame.rotation or 0.0),
    )


def read_image(file: str) -> np.ndarray:
    """One frame image -> RGB (h, w, 3) uint8, or uint16 for 16-bit images; gray is
    replicated to RGB, alpha dropped. Raises VideoError for an unreadable file or one over
    `MAX_FRAME_PIXELS` (checked from the header: OpenCV decodes everything at once)."""
    import cv2

    image_size(file)
    image = cv2.imread(file, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise VideoError(f"cannot read frame {file}; replace or remove it")
    if image.dtype not in (np.uint8, np.uint16):
        raise VideoError(f"{file} has {image.dtype} pixels; save frames as 8- or 16-bit images")
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    elif image.shape[-1] == 4:
        image = image[..., :3]
    elif image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return np.ascontiguousarray(image[..., ::-1])  # OpenCV's BGR -> RGB


def decode(info: VideoInfo, start: int = 0) -> Iterator[tuple[int, np.ndarray]]:
    """Yields (pts in `info.time_base`, RGB frame (h, w, 3) of `info.dtype`) from frame
    `start` on. Timestamps are the file's (variable frame rates stay in sync); where a
    file has none or they go backwards (raw streams, AVI with B-frames) they are
    index / rate. Frames of another size than the first raise VideoError.
    """
    if info.is_folder:
        for i, file in enumerate(image_files(info.path)[start:], start):
            image = read_image(file)
            if image.shape[:2] != (info.height, info.width) or image.dtype != info.dtype:
                raise VideoError(
                    f"frame {file} is {image.shape[1]}×{image.shape[0]} {image.dtype}, the first frame "
                    f"{info.width}×{info.height} {np.dtype(info.dtype)}; all frames of a folder must match"
                )
            yield i, image
        return
    import av

    fmt = "rgb24" if info.bit_depth <= 8 else "rgb48le"
    last = None
    try:
        with av.open(info.path) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            _limit_decoder(info.path, stream)
            for i, frame in enumerate(container.decode(stream)):
                pts = frame.pts
                if pts is None or (last is not None and pts <= last):
                    pts = round(i / info.rate / info.time_base)
                last = pts
                if i < start:
                    continue
                if (frame.width, frame.height) != (info.width, info.height):
                    raise VideoError(
                        f"{info.path}: frame {i} is {frame.width}×{frame.height}, the first "
                        f"{info.width}×{info.height}; videos that change size mid-stream are not supported"
                    )
                # the matrix and range named explicitly: the frame's, else the stream's
                matrix, rng = _sws_colour(
                    frame.colorspace if int(frame.colorspace) in _MATRIX else info.colorspace,
                    frame.color_range or info.color_range,
                )
                rgb = frame.reformat(format=fmt, src_colorspace=matrix, src_color_range=rng, threads=SWS_THREADS)
                yield pts, rgb.to_ndarray()
    except av.error.FFmpegError as e:
        raise VideoError(f"{info.path} could not be decoded past frame {last} ({e}); is the file damaged?") from e


def to_uint8(frame: np.ndarray) -> np.ndarray:
    """The one conversion of `decode`'s / `read_image`'s frames to the uint8 that training and
    evaluation use: uint8 unchanged; uint16 (>8-bit sources, full 16-bit range) rounded to the
    nearest of 256 levels, round(v / 257) = (v + 128) // 257 exactly (257 is odd: no ties).

    Rounding the upscaler's 16-bit frames, rather than asking swscale for rgb24 from a 10-bit
    source, keeps one decoder for every reader and is exact integer arithmetic, the same on every
    machine; swscale's own 10 -> 8 bit conversion is not the rounding of its 16-bit output.
    """
    frame = np.asarray(frame)
    if frame.dtype == np.uint8:
        return frame
    if frame.dtype != np.uint16:
        raise TypeError(f"frames are uint8 or uint16, not {frame.dtype}")
    return ((frame.astype(np.uint32) + 128) // 257).astype(np.uint8)


def iter_frames(source: str | os.PathLike | VideoInfo) -> Iterator[np.ndarray]:
    """Training's and evaluation's reader: the RGB frames (H, W, 3) uint8 of a video file or a
    folder of frames (natural order), one at a time (bounded memory): `probe` + `decode` +
    `to_uint8`, so they are the upscaler's frames. `source` may be `probe`'s VideoInfo.

    A truncated file is read as far as it goes (as FFmpeg would); VideoError with the path and
    what to do for a missing, unreadable or empty input.
    """
    if isinstance(source, VideoInfo):
        info = source
    else:
        path = os.fspath(source)
        if not os.path.exists(path):
            raise VideoError(f"video file not found: {path}")
        info = probe(path, allow_truncated=True)
    count = 0
    with contextlib.closing(decode(info)) as frames:
        for _, frame in frames:
            yield to_uint8(frame)
            count += 1
    if not count:
        raise VideoError(f"{info.path} decoded to no frames; is it a valid video file?")


def read_frames(source: str | os.PathLike | VideoInfo) -> np.ndarray:
    """A whole video file or folder of frames as (T, H, W, 3) uint8 (see `iter_frames`)."""
    return np.stack(list(iter_frames(source)))


def output_pix_fmt(codec: str, info: VideoInfo, requested: str = "") -> str:
    """The pixel format to encode with: `requested`, else the input's when `codec` can
    write it, else yuv420p (8-bit input) / yuv420p10le (deeper input, if the codec can)."""
    import av

    try:
        encoder = av.codec.Codec(codec, "w")
    except (av.error.FFmpegError, ValueError) as e:
        raise VideoError(f"unknown video encoder {codec!r} ({e}); try libx264, libx265, libvpx-vp9 or libsvtav1") from e
    if encoder.type != "video":
        raise VideoError(f"{codec!r} is not a video encoder; try libx264, libx265, libvpx-vp9 or libsvtav1")
    formats = [f.name for f in (encoder.video_formats or ())]
    if requested:
        if formats and requested not in formats:
            raise VideoError(f"--pix_fmt={requested} cannot be written by {codec}; it writes {', '.join(formats)}")
        return requested
    if info.pix_fmt in formats and not info.pix_fmt.startswith("gray"):
        return info.pix_fmt
    if info.bit_depth > 8 and "yuv420p10le" in formats:
        return "yuv420p10le"
    return "yuv420p" if not formats or "yuv420p" in formats else formats[0]


@dataclasses.dataclass
class EncodeSettings:
    """How the video stream of the output is encoded (see `vsr-upscale --help`)."""

    codec: str = "libx264"
    crf: int | None = 18
    preset: str = "medium"
    pix_fmt: str = "yuv420p"
    options: dict = dataclasses.field(default_factory=dict)

    def codec_options(self) -> dict:
        opts = {}
        if self.crf is not None:
            opts["crf"] = str(self.crf)
            if self.codec == "libvpx-vp9":
                opts["b"] = "0"  # constant quality mode
        if self.preset:
            if self.codec in ("libx264", "libx265"):
                opts["preset"] = self.preset
            elif self.codec == "libsvtav1" and self.preset.isdigit():
                opts["preset"] = self.preset
        opts.update(self.options)
        return opts


class SegmentEncoder:
    """Encodes RGB frames with their timestamps into one segment file (mp4, so that any
    time base survives exactly; the final output is remuxed from the segments).

    Frames are converted to `settings.pix_fmt` with the input's colour matrix and range,
    and the output carries the input's colour tags and display rotation.
    """

    def __init__(self, path: str, info: VideoInfo, width: int, height: int, settings: EncodeSettings):
        import av

        self._av = av
        self.container = av.open(path, "w", format="mp4", options={"movie_timescale": "90000"})
        try:
            stream = self.container.add_stream(settings.codec, rate=info.rate, options=settings.codec_options())
        except (av.error.FFmpegError, ValueError) as e:
            self.container.close()
            raise VideoError(f"cannot encode with codec {settings.codec!r} ({e})") from e
        stream.width, stream.height, stream.pix_fmt = width, height, settings.pix_fmt
        cc = stream.codec_context
        cc.time_base = info.time_base
        cc.colorspace, cc.color_primaries, cc.color_trc = info.colorspace, info.color_primaries, info.color_trc
        cc.color_range = info.color_range or 1
        if info.rotation:
            stream.set_display_rotation(info.rotation)
        self.stream, self.info, self.settings = stream, info, settings
        self._matrix, self._range = _sws_colour(info.colorspace, info.color_range)

    def write(self, pts: int, rgb: np.ndarray) -> None:
        av = self._av
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24" if rgb.dtype == np.uint8 else "rgb48le")
        frame = frame.reformat(
            format=self.settings.pix_fmt, dst_colorspace=self._matrix, dst_color_range=self._range, threads=SWS_THREADS
        )
        frame.pts, frame.time_base = int(pts), self.info.time_base
        frame.colorspace, frame.color_primaries, frame.color_trc = (
            self.info.colorspace,
            self.info.color_primaries,
            self.info.color_trc,
        )
        self.container.mux(self.stream.encode(frame))

    def close(self) -> None:
        self.container.mux(self.stream.encode(None))
        self.container.close()

    def abort(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 — the file is deleted next anyway
            pass


_AUDIO_FOR_CONTAINER = {".webm": "libopus", ".mp4": "aac", ".mov": "aac", ".m4v": "aac"}


def _audio_transcoder(out, stream):
    """An output audio stream that re-encodes `stream` into a codec `out`'s container holds
    (Opus for WebM, AAC for MP4/MOV), or None."""
    codec = _AUDIO_FOR_CONTAINER.get(os.path.splitext(out.name)[1].lower())
    if codec is None:
        return None
    rate = 48000 if codec == "libopus" else stream.codec_context.sample_rate
    o = out.add_stream(codec, rate=rate)
    o.layout = stream.codec_context.layout.name if stream.codec_context.layout else "stereo"
    return o


def remux(segments: Sequence[str], source: str | None, output: str, *, copy_streams: bool = True) -> list[str]:
    """Joins encoded video segments into `output` (container from its extension) and
    copies the audio and subtitle streams of `source` unchanged (no re-encoding), with
    the container's and streams' metadata. Packets are interleaved by time. Returns
    warnings about streams that could not be kept (e.g. mov_text subtitles into .mkv).
    """
    import heapq

    import av

    warnings = []
    with av.open(segments[0]) as first, av.open(output, "w") as out:
        template = first.streams.video[0]
        try:
            vstream = out.add_stream_from_template(template)
        except av.codec.codec.UnknownCodecError:
            # the decoder has no encoder of its name (AV1's libdav1d): packets are only copied,
            # so the template's own codec serves
            vstream = out.add_stream_from_template(template, opaque=True)
        inp = av.open(source) if source and copy_streams else None
        try:
            copies, transcode = {}, set()
            if inp is not None:
                out.metadata.update(inp.metadata)
                vstream.metadata.update(inp.streams.video[0].metadata)
                for s in inp.streams:
                    if s.type not in ("audio", "subtitle"):
                        if s.type != "video":
                            warnings.append(f"{s.type} stream {s.index} ({s.codec_context.name}) is not copied")
                        continue
                    try:
                        o = out.add_stream_from_template(s)
                    except ValueError as e:
                        o = _audio_transcoder(out, s) if s.type == "audio" else None
                        if o is None:
                            warnings.append(f"{s.type} stream {s.index} dropped: {e}")
                            continue
                        warnings.append(
                            f"audio stream {s.index} re-encoded to {o.codec_context.name}: "
                            f"{os.path.splitext(output)[1]} cannot hold {s.codec_context.name}"
                        )
                        transcode.add(s.index)
                    o.metadata.update(s.metadata)
                    copies[s.index] = o

            def video_packets():
                last = None
                for seg in segments:
                    with av.open(seg) as c:
                        for p in c.demux(c.streams.video[0]):
                            if not p.size:
                                continue
                            if p.dts is not None and last is not None and p.dts <= last:
                                p.dts = last + 1  # variable frame rates across a segment joint; still ≤ pts
                            last = p.dts
                            p.stream = vstream
                            yield p

            def other_packets():
                if not copies:
                    return
                for p in inp.demux(*[inp.streams[i] for i in copies]):
                    o = copies.get(p.stream_index)
                    if o is None:  # (the end-of-file packets come for every stream)
                        continue
                    if p.stream_index in transcode:  # decode and encode (an empty packet flushes)
                        frames = p.decode()
                        yield from (q for f in frames for q in o.encode(f))
                        if not p.size:
                            yield from o.encode(None)
                    elif p.size:
                        p.stream = o
                        yield p

            def key(p):
                t = p.dts if p.dts is not None else p.pts
                return float(t * p.time_base) if t is not None else 0.0

            for p in heapq.merge(video_packets(), other_packets(), key=key):
                out.mux(p)
        finally:
            if inp is not None:
                inp.close()
    return warnings
