"""vsr-upscale: streams a video (or a folder of frames, or a folder of videos) through a
trained model, with bounded memory, the audio kept, and resume after a crash.

    vsr-upscale IN.mp4 -o OUT.mp4 --workdir=RUN            # the run's newest checkpoint
    vsr-upscale IN.mkv -o OUT.mkv --workdir=RUN --crf=16 --preset=slow --pix_fmt=yuv420p10le
    vsr-upscale IN.mp4 -o frames_out/ --workdir=RUN         # a folder of PNG frames
    vsr-upscale frames_in/ -o OUT.mp4 --workdir=RUN --fps=30
    vsr-upscale videos/ -o upscaled/ --workdir=RUN          # every video of a folder
    vsr-upscale BIG.mp4 -o OUT.mp4 --workdir=RUN --tile=256 --tile_pad=24 --bf16
    vsr-upscale IN.mp4 -o OUT.mp4 --weights=RealESRGAN_x4plus.pth  # a published weight file
    vsr-upscale IN.mp4 -o OUT.mp4 --model=realesr-animevideov3     # by name: downloaded once
    vsr-upscale IN.mp4 -o OUT.mp4 --model=realesr-general-x4v3 --denoise=0.2  # keep more noise

Run the same command again after an interruption to continue where it stopped (see
`vsr_jax.upscale.job`). Errors in the input print one line and exit with status 1.
The model is one of --workdir (a run folder), --weights (a .pth/.npz state_dict, its
architecture and scale worked out from its keys and shapes as `python -m vsr_jax.pretrained
import` does) or --model (a name of `python -m vsr_jax.pretrained list`, fetched into the
weights cache on first use, then read as --weights; --denoise sets realesr-general-x4v3's
denoise strength as Real-ESRGAN's -dn: its parameters mixed with its -wdn- twin's). The run folder may come from
elsewhere: the model is built from its checkpoint's config, sizes are checked before any
array is read, and paths in that config are not used.
Orbax's notices about opening the run read-only show only with `-v 1`.
"""

from __future__ import annotations

import os
import signal

from absl import app, flags

from vsr_jax import cli
from vsr_jax.errors import UserError
from vsr_jax.upscale.sources import choose_model, log

_OUTPUT = flags.DEFINE_string(
    "output", None, "Output video (.mp4/.mkv/.mov/.webm) or folder of PNG frames.", short_name="o"
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Training run whose checkpoint to use (its config is inside).")
_WEIGHTS = flags.DEFINE_string(
    "weights", None, "A published weight file (.pth/.npz state_dict) to upscale with, instead of a run."
)
_MODEL = flags.DEFINE_string(
    "model", None, "A published model by name (python -m vsr_jax.pretrained list), downloaded on first use."
)
_DENOISE = flags.DEFINE_float(
    "denoise",
    None,
    "--model=realesr-general-x4v3's denoise strength, 0 (weak: keeps noise) .. 1 (strong), default 0.5 as "
    "Real-ESRGAN's -dn: the model's parameters mixed with those of its -wdn- twin (both downloaded).",
)
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).")
_CODEC = flags.DEFINE_string(
    "codec", "", "Video encoder: libx264, libx265, libvpx-vp9, libsvtav1 (default: by extension)."
)
_CRF = flags.DEFINE_integer("crf", 18, "Constant quality (lower: better, bigger; x264/x265 ~18 is visually lossless).")
_PRESET = flags.DEFINE_string("preset", "medium", "Encoder speed/size preset (x264/x265: ultrafast … veryslow).")
_PIX_FMT = flags.DEFINE_string("pix_fmt", "", "Output pixel format, e.g. yuv420p, yuv420p10le (default: the input's).")
_CHUNK = flags.DEFINE_integer(
    "chunk",
    0,
    "Frames per model call / window length (0: 4 image (a multiple of the devices), 8 recurrent, 16 window, "
    "8 sliding: + 2r context).",
)
_OVERLAP = flags.DEFINE_integer("overlap", 4, "Bidirectional models: frames shared by neighbouring windows.")
_TILE = flags.DEFINE_integer("tile", 0, "Cut frames into tiles of this many LR pixels (0: whole frames).")
_TILE_PAD = flags.DEFINE_integer("tile_pad", 16, "LR pixels of context around each tile.")
_TILE_BATCH = flags.DEFINE_integer("tile_batch", 1, "Tiles per model call.")
_BF16 = flags.DEFINE_bool("bf16", False, "Compute in bfloat16 (params stay float32): faster on TPU/GPU.")
_ENSEMBLE = flags.DEFINE_bool("self_ensemble", False, "Mean over the 8 flips/transposes (8× slower, ~+0.1 dB).")
_SEGMENT = flags.DEFINE_integer("segment_frames", 240, "Frames per resumable segment.")
_QUEUE = flags.DEFINE_integer("queue", 16, "Frames buffered between decoder, model and encoder.")
_FPS = flags.DEFINE_float("fps", 25.0, "Frame rate of a folder-of-frames input.")
_COPY = flags.DEFINE_bool("copy_streams", True, "Copy the input's audio and subtitle streams (no re-encoding).")
_TRUNCATED = flags.DEFINE_bool("allow_truncated", False, "Upscale what a truncated file holds instead of refusing.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing output.")
_EXT = flags.DEFINE_string("ext", "", "Batch mode: output container extension (default: the input's, else .mp4).")
_PROGRESS = flags.DEFINE_bool("progress", True, "Show a progress bar (frames/s, ETA).")
_DEVICES = flags.DEFINE_integer(
    "devices",
    0,
    "Local devices to spread the model over (0: all). Image models split each chunk's frames over them; "
    "sliding-window and windowed models run one call per device; video models split tiles (--tile); "
    "a recurrent model on whole frames uses one device (each chunk depends on the last).",
)

WRITABLE_EXTENSIONS = (".mp4", ".mkv", ".mov", ".webm")


def _options():
    from vsr_jax.upscale import job

    return job.Options(
        chunk=_CHUNK.value,
        overlap=_OVERLAP.value,
        tile=_TILE.value,
        tile_pad=_TILE_PAD.value,
        tile_batch=_TILE_BATCH.value,
        self_ensemble=_ENSEMBLE.value,
        segment_frames=_SEGMENT.value,
        queue=_QUEUE.value,
        codec=_CODEC.value,
        crf=_CRF.value,
        preset=_PRESET.value,
        pix_fmt=_PIX_FMT.value,
        copy_streams=_COPY.value,
        allow_truncated=_TRUNCATED.value,
        folder_fps=_FPS.value,
        progress=_PROGRESS.value,
        overwrite=_OVERWRITE.value,
        devices=_DEVICES.value,
    )


def plan(inputs: list[str], output: str) -> tuple[list[tuple[str, str]], bool]:
    """(input, output) pairs and whether it is a batch: one file or frame folder -> `output`;
    a folder of videos (or several inputs) -> one output per video inside the folder `output`
    (named as `paths.batch_outputs` says). Nothing is created."""
    from vsr_jax import video_io
    from vsr_jax.upscale import paths

    if not inputs:
        raise UserError("give an input video, folder of frames or folder of videos: vsr-upscale IN -o OUT")
    if not output:
        raise UserError("-o/--output is required (a video file, or a folder for PNG frames or batch mode)")
    videos = []
    for path in inputs:
        if not os.path.exists(path):
            raise UserError(f"input not found: {path}")
        if os.path.isdir(path) and not video_io.image_files(path):
            found = sorted(
                os.path.join(path, n)
                for n in os.listdir(path)
                if n.lower().endswith(video_io.VIDEO_EXTENSIONS) and not n.startswith(".")
            )
            if not found:
                raise UserError(f"{path} holds neither frames ({', '.join(video_io.IMAGE_EXTENSIONS)}) nor videos")
            videos += found
        else:
            videos.append(path)
    if len(inputs) == 1 and videos == inputs:
        return [(inputs[0], output)], False
    if os.path.splitext(output)[1].lower() in video_io.VIDEO_EXTENSIONS:
        raise UserError(f"several inputs need a folder as output, not {output}")
    if os.path.islink(output) or (os.path.lexists(output) and not os.path.isdir(output)):
        raise UserError(f"the batch output {output} must be a folder (not a link or a file)")
    real_out = os.path.realpath(output)
    for path in inputs:
        folder = os.path.realpath(path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path)))
        if paths.within(real_out, folder):
            raise UserError(
                f"the output folder {output} is inside the input folder {folder}: a second run would take "
                "the outputs for inputs; choose a folder outside it"
            )

    def ext_of(video: str) -> str:
        ext = os.path.splitext(video.rstrip(os.sep))[1].lower()
        ext = _EXT.value or (ext if ext in WRITABLE_EXTENSIONS else ".mp4")
        return ext if ext.startswith(".") else "." + ext

    return paths.batch_outputs(videos, output, ext_of), True


def _interrupt(signum, frame):
    raise KeyboardInterrupt  # SIGTERM (kill, a scheduler): stop as on Ctrl-C, resumable


def _prepare(argv):
    """(pairs, batch, skipped outputs, model, options), every input checked before any work."""
    from vsr_jax.upscale import job, paths

    pairs, batch = plan(argv[1:], _OUTPUT.value)
    skipped = set()
    for source, output in pairs:
        if batch and os.path.lexists(output) and not _OVERWRITE.value:
            skipped.add(output)  # done by an earlier run, or not ours: left alone, and said below
            continue
        paths.check_output(source, output, _OVERWRITE.value, job.is_video_path(output))
    into = _OUTPUT.value if batch and os.path.isdir(_OUTPUT.value) else os.path.dirname(os.path.abspath(_OUTPUT.value))
    paths.check_writable(into)  # (a batch's output folder is made once the model has loaded)
    options = _options()
    model = choose_model(
        _WORKDIR.value,
        _STEP.value,
        _WEIGHTS.value,
        _MODEL.value,
        _BF16.value,
        _PROGRESS.value,
        denoise=_DENOISE.value,
        options=options,
    )
    if batch:
        os.makedirs(_OUTPUT.value, exist_ok=True)
    return pairs, batch, skipped, model, options


# a setup error leaves at once, before Orbax's leftover threads print anything (nothing is
# written yet); an error in one input of a batch is a line, and the batch goes on
@cli.exit_path("vsr-upscale", exit_at_once=True)
def main(argv):
    from vsr_jax.upscale import job

    cli.quiet_library_logs()
    signal.signal(signal.SIGTERM, _interrupt)
    pairs, batch, skipped, model, options = _prepare(argv)
    failed = 0
    for source, output in pairs:
        if output in skipped:
            log(f"warning: {output} exists, skipped (--overwrite replaces what vsr-upscale wrote)")
            continue
        try:
            report = job.run(model, source, output, options, log=log)
        except UserError as e:
            log(f"vsr-upscale: error: {e}")
            failed += 1
            continue
        except KeyboardInterrupt:
            raise cli.Exit(130, f"interrupted; run the same command again to resume {output}") from None
        log(
            f"wrote {output}: {report.frames} frames, {report.fps:.2f} frames/s "
            f"(busy s: decode {report.decode_s:.1f}, model {report.model_s:.1f} + first chunk "
            f"{report.first_chunk_s:.1f}, encode {report.encode_s:.1f})"
        )
    if failed or skipped:
        # a batch that did not do everything says so in its exit status
        summary = (
            f"{failed + len(skipped)} of {len(pairs)} inputs not upscaled ({len(skipped)} skipped, {failed} failed)"
        )
        raise cli.Exit(1, summary if batch else "")


def run():
    """Console-script entry point (`vsr-upscale`)."""
    app.run(main)


if __name__ == "__main__":
    run()
