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

Run the same command again after an interruption to continue where it stopped (see
`vsr_jax.upscale.job`). Errors in the input print one line and exit with status 1.
The model is one of --workdir (a run folder), --weights (a .pth/.npz state_dict, its
architecture and scale worked out from its keys and shapes as `python -m vsr_jax.pretrained
import` does) or --model (a name of `python -m vsr_jax.pretrained list`, fetched into the
weights cache on first use, then read as --weights). The run folder may come from
elsewhere: the model is built from its checkpoint's config, sizes are checked before any
array is read, and paths in that config are not used.
Orbax's notices about opening the run read-only show only with `-v 1`.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import sys

from absl import app, flags

from vsr_jax import cli
from vsr_jax.errors import UserError

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
_STEP = flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest).")
_CODEC = flags.DEFINE_string(
    "codec", "", "Video encoder: libx264, libx265, libvpx-vp9, libsvtav1 (default: by extension)."
)
_CRF = flags.DEFINE_integer("crf", 18, "Constant quality (lower: better, bigger; x264/x265 ~18 is visually lossless).")
_PRESET = flags.DEFINE_string("preset", "medium", "Encoder speed/size preset (x264/x265: ultrafast … veryslow).")
_PIX_FMT = flags.DEFINE_string("pix_fmt", "", "Output pixel format, e.g. yuv420p, yuv420p10le (default: the input's).")
_CHUNK = flags.DEFINE_integer("chunk", 0, "Frames per model call / window length (0: 4 image, 8 recurrent, 16 window).")
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

WRITABLE_EXTENSIONS = (".mp4", ".mkv", ".mov", ".webm")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_model(workdir: str, step: int | None, bf16: bool):
    """The checkpoint's generator (EMA when kept) as a `job.Model`; bad checkpoints are UserErrors."""
    from vsr_jax import checkpointing, config_lib, models
    from vsr_jax.evaluate.runs import load_run
    from vsr_jax.upscale import job

    if not workdir:
        raise UserError("--workdir is required: the training run whose checkpoint upscales")
    # Orbax's worker threads print tracebacks of a failed restore, also after it has raised:
    # stderr stays captured on failure (the caller reports one line on fd 2 and exits at once)
    quiet = contextlib.redirect_stderr(io.StringIO())
    quiet.__enter__()
    try:
        config, model, params, step = load_run(workdir, step)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 — Orbax/tensorstore errors on a damaged checkpoint
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise checkpointing.CheckpointError(
            f"cannot read the checkpoint in {workdir} ({type(e).__name__}: {first[:200]}); "
            "is it complete? use another --step or re-copy the run"
        ) from None
    quiet.__exit__(None, None, None)
    if bf16:
        kwargs = {**config_lib.model_kwargs(config), "dtype": "bfloat16"}
        model = models.create_model(config.model.name, int(config.data.scale), kwargs)
    label = f"{os.path.realpath(workdir)}@{step}{'/bf16' if bf16 else ''}"
    log(f"model: {config.model.name} x{config.data.scale} from {workdir} step {step}{' (bfloat16)' if bf16 else ''}")
    return job.Model(model, params, int(config.data.num_frames), label)


def weights_model(path: str, bf16: bool, name: str = ""):
    """The model of a weight file (`importer.load_weights`) as a `job.Model`; its resume label
    names the file's real path, size and mtime, so that other weights start a job over."""
    from vsr_jax.pretrained import importer
    from vsr_jax.upscale import job

    if not os.path.isfile(path):
        raise UserError(f"--weights: no weight file {path}")
    config, model, params = importer.load_weights(path, dtype="bfloat16" if bf16 else None)
    st = os.stat(path)
    label = f"weights:{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}{'/bf16' if bf16 else ''}"
    log(
        f"model: {config.model.name} x{config.data.scale} from {name or path}"
        f"{' (' + path + ')' if name else ''}{' (bfloat16)' if bf16 else ''}"
    )
    return job.Model(model, params, int(config.data.num_frames), label)


def registry_model(entry, bf16: bool, progress: bool = True):
    """The published model `entry` (a `registry.Entry`, or its name): its file fetched into the
    weights cache (`download.fetch`) unless there already, then `weights_model`. Entries with
    no known sha256 are read unverified (said in a log line): the file goes through the
    restricted unpickler, which runs no code, and its keys and shapes are checked."""
    from vsr_jax.pretrained import download, registry

    if isinstance(entry, str):
        entry = registry.get(entry)
    path = download.fetch(entry.url, sha256=entry.sha256, allow_unverified=entry.sha256 is None, progress=progress)
    if entry.sha256 is None and download.hash_prefix_from_name(entry.filename) is None:
        log(f"{entry.name}: {path} is not hash-verified (no published sha256); its keys and shapes are checked")
    return weights_model(path, bf16, name=entry.name)


def choose_model(workdir: str | None, step: int | None, weights: str | None, name: str | None, bf16: bool):
    """The model of exactly one of --workdir / --weights / --model."""
    given = [f for f, v in (("--workdir", workdir), ("--weights", weights), ("--model", name)) if v]
    if len(given) > 1:
        raise UserError(f"give one of --workdir, --weights, --model, not {' and '.join(given)}")
    if not given:
        raise UserError(
            "--workdir (a training run), --weights (a weight file) or --model (a published name) is required"
        )
    if step is not None and not workdir:
        raise UserError("--step picks a checkpoint of a --workdir run; a weight file has none")
    if weights:
        return weights_model(weights, bf16)
    if name:
        return registry_model(name, bf16, progress=_PROGRESS.value)
    return load_model(workdir, step, bf16)


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


def main(argv):
    from vsr_jax.upscale import job, paths

    cli.quiet_library_logs()
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        pairs, batch = plan(argv[1:], _OUTPUT.value)
        skipped = set()
        for source, output in pairs:
            if batch and os.path.lexists(output) and not _OVERWRITE.value:
                skipped.add(output)  # done by an earlier run, or not ours: left alone, and said below
                continue
            paths.check_output(source, output, _OVERWRITE.value, job.is_video_path(output))
        into = (
            _OUTPUT.value if batch and os.path.isdir(_OUTPUT.value) else os.path.dirname(os.path.abspath(_OUTPUT.value))
        )
        paths.check_writable(into)  # (a batch's output folder is made once the model has loaded)
        model = choose_model(_WORKDIR.value, _STEP.value, _WEIGHTS.value, _MODEL.value, _BF16.value)
        options = _options()
        if batch:
            os.makedirs(_OUTPUT.value, exist_ok=True)
    except UserError as e:
        # nothing is written yet: say it on fd 2 (sys.stderr may still be captured, see
        # load_model) and leave at once, before Orbax's leftover threads print anything
        sys.stdout.flush()
        os.write(2, f"vsr-upscale: error: {e}\n".encode())
        os._exit(1)
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
            log(f"vsr-upscale: interrupted; run the same command again to resume {output}")
            sys.exit(130)
        log(
            f"wrote {output}: {report.frames} frames, {report.fps:.2f} frames/s "
            f"(busy s: decode {report.decode_s:.1f}, model {report.model_s:.1f} + first chunk "
            f"{report.first_chunk_s:.1f}, encode {report.encode_s:.1f})"
        )
    if failed or skipped:
        if batch:  # a batch that did not do everything says so in its exit status
            log(
                f"vsr-upscale: {failed + len(skipped)} of {len(pairs)} inputs not upscaled "
                f"({len(skipped)} skipped, {failed} failed)"
            )
        sys.exit(1)


def run():
    """Console-script entry point (`vsr-upscale`)."""
    app.run(main)


if __name__ == "__main__":
    run()
