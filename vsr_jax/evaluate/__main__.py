"""vsr-eval: evaluates a run's Orbax checkpoints, or compares two folders of frames.

    vsr-eval --workdir=RUN                      # the newest checkpoint, then exit
    vsr-eval --workdir=RUN --all                # every kept checkpoint
    vsr-eval --workdir=RUN --watch              # each new checkpoint of a running job, once
    vsr-eval --workdir='runs/*' --compare_out=runs/compare   # one table over runs
    vsr-eval --workdir=RUN --dataset=vid4 --data_dir=~/data/Vid4 --degradation=bd
    vsr-eval --pred_dir=OUT --gt_dir=GT         # someone else's outputs, no model
    vsr-eval --weights=BasicVSR_REDS4-543c8261.pth --dataset=reds4 --data_dir=~/data/REDS4
    vsr-eval --model=NAME --dataset=vid4 --data_dir=~/data/Vid4 --out=scores/   # a registry name

Everything about the model comes from the workdir: the config is saved inside every
checkpoint, so the training config file is never needed. The generator's EMA is used when
the run kept one. Per checkpoint it writes RUN/eval/<step>/metrics.json (every metric, per
clip and the mean over clips), metrics.csv, a figure (LR nearest / bicubic / SR / HR) and
TensorBoard scalars under RUN/eval; other test sets go to RUN/eval/<step>/<dataset>/.
Protocol: `vsr_jax.evaluate` (BasicSR's PSNR/SSIM, Y and RGB; TecoGAN's tOF).

A published weight file (--weights=FILE.pth, or --model=NAME from `python -m
vsr_jax.pretrained list`, fetched into the weights cache) is scored with no run folder: its
architecture comes from its keys (`pretrained.importer.load_weights`). It has no held-out
split, so --dataset is required. The defaults then follow the test set's published protocol
(`datasets.PROTOCOLS`, printed with its source): Vid4 and UDM10 Y channel, REDS4 RGB, crop
border 0, UDM10 with BD LR, Vimeo-90K the centre frame of each clip + its reverse averaged;
--channel, --crop_border, --degradation, --[no]center_frame and --[no]flip_seq override
them. Video models see each clip whole in one call (BasicVSR propagates over all of it, as
BasicSR's VideoRecurrentTestDataset; our BasicVSR unrolls over the clip's frames, so each new
clip length compiles anew); image models see batches of frames. The table prints; --out=DIR also writes metrics.json,
metrics.csv and samples.png there (nothing is written without --out).

A run folder may come from elsewhere: the model is rebuilt from its config and the
checkpoint's array sizes are checked against it before anything is read, and the paths in
its config (data.path, cache_dir, manual_dir, tfds_data_dir) are never used: the run's own
video_folder / vimeo90k test split needs --data_dir (and --cache_dir / --tfds_data_dir if
not the defaults). Orbax's notices about opening a run read-only show with `-v 1`.
"""

from __future__ import annotations

import glob
import os
import time

from absl import app, flags, logging

from vsr_jax import cli, fileio
from vsr_jax.errors import UserError
from vsr_jax.evaluate import ClipEvaluator, datasets, flip_seq_predictor, make_predictor
from vsr_jax.evaluate.runs import checkpoint_steps, load_published, load_run

FLAGS = flags.FLAGS
_WORKDIR = flags.DEFINE_multi_string("workdir", [], "Run directory; repeat it or give a glob for several runs.")
_ALL = flags.DEFINE_bool("all", False, "Evaluate every kept checkpoint, not only the newest.")
_STEP = flags.DEFINE_integer("step", None, "Evaluate this checkpoint step.")
_WATCH = flags.DEFINE_bool(
    "watch", False, "Wait for new checkpoints and evaluate each once, until the run's final step is evaluated."
)
_IDLE = flags.DEFINE_float("idle_timeout", 3600.0, "--watch: exit after this many seconds without a new checkpoint.")
_POLL = flags.DEFINE_float("poll_every", 10.0, "--watch: seconds between looks at the checkpoint directory.")
_DATASET = flags.DEFINE_enum(
    "dataset",
    "",
    ["", *datasets.DATASETS],
    "Test set; default: the run's own held-out split (config.data). Required with --weights/--model.",
)
_WEIGHTS = flags.DEFINE_string(
    "weights", "", "Score a published weight file (.pth/.npz; architecture from its keys), no run folder; see --out."
)
_MODEL = flags.DEFINE_string(
    "model", "", "Score a published model by name (python -m vsr_jax.pretrained list), fetched into the weights cache."
)
_CHANNEL = flags.DEFINE_enum(
    "channel",
    "",
    ["", "y", "rgb"],
    "Headline PSNR/SSIM channel (both are computed); default y, with --weights/--model the test set's published one.",
)
_DATA_DIR = flags.DEFINE_string(
    "data_dir", "", "Root of the test set (vid4, reds4, udm10, folder; vimeo90k: the zip's folder; video_folder)."
)
_CACHE_DIR = flags.DEFINE_string(
    "cache_dir", "", "video_folder: decoded-frame cache (default ~/.cache/vsr_jax; never the checkpoint's)."
)
_TFDS_DIR = flags.DEFINE_string(
    "tfds_data_dir", "", "vimeo90k, cats_vs_dogs: TFDS's prepared data (default ~/tensorflow_datasets)."
)
_LR_DIR = flags.DEFINE_string("lr_dir", "", "--dataset=folder: LR clips with the HR clips' names (default: degrade).")
_DEGRADATION = flags.DEFINE_enum("degradation", "", ["", "bi", "bd"], "LR degradation; default: the run's.")
_MAX_CLIPS = flags.DEFINE_integer("max_clips", 0, "Evaluate at most this many clips (0: all).")
_STRIDE = flags.DEFINE_integer("frame_stride", 1, "Score every k-th frame (tOF only when 1).")
_CENTER = flags.DEFINE_bool(
    "center_frame",
    False,
    "Score only each clip's middle frame (Vimeo-90K's published protocol, on by default there with --weights); no tOF.",
)
_FLIP_SEQ = flags.DEFINE_bool(
    "flip_seq",
    False,
    "Video models: each clip and its reverse in one call, the two outputs averaged (BasicSR's flip_seq; "
    "on by default for vimeo90k with --weights/--model; image models: no effect).",
)
_CROP = flags.DEFINE_integer(
    "crop_border", -1, "Pixels cut from each edge before PSNR/SSIM (-1: the scale; --weights/--model: the protocol's)."
)
_ENSEMBLE = flags.DEFINE_bool("self_ensemble", False, "×8 flip/transpose test-time ensemble (8× slower).")
_PRED_DIR = flags.DEFINE_string("pred_dir", "", "Folder of SR frames (or of clip folders / videos) to score.")
_GT_DIR = flags.DEFINE_string("gt_dir", "", "Ground truth for --pred_dir, same layout and names.")
_OUT = flags.DEFINE_string(
    "out",
    "",
    "--pred_dir, --weights, --model: write metrics.json / metrics.csv (and samples.png) here; else only printed.",
)
_COMPARE_OUT = flags.DEFINE_string("compare_out", "", "Several runs: write PREFIX.md and PREFIX.csv comparing them.")
_LPIPS = flags.DEFINE_string(
    "lpips_weights", "", "LPIPS .npz (python -m vsr_jax.tools.convert_lpips): adds LPIPS and tLP (TecoGAN)."
)


# ------------------------------------------------------------------- loading


def test_pairs(config, cache: dict):
    """The test clips for `config` under the command-line dataset flags (cached per key).
    Raises UserError for a test set the flags cannot locate."""
    from vsr_jax.data import pipeline

    scale = int(config.data.scale)
    kind = _DEGRADATION.value or config.data.degradation
    name = _DATASET.value or config.data.name
    key = (name, scale, kind, _DATA_DIR.value, _LR_DIR.value, _CACHE_DIR.value, _TFDS_DIR.value, _MAX_CLIPS.value)
    if key not in cache:
        if name in datasets.NAMED:
            if not _DATA_DIR.value:
                raise UserError(f"--dataset={name} needs --data_dir (the folder holding {datasets.HR_DIRS[name][0]}/)")
            cache[key] = datasets.named_pairs(name, _DATA_DIR.value, scale=scale, degradation=kind, max_clips=key[-1])
        elif name == "folder":
            if not _DATA_DIR.value:
                raise UserError("--dataset=folder needs --data_dir (a folder of clip folders or videos)")
            cache[key] = datasets.folder_pairs(
                os.path.expanduser(_DATA_DIR.value),
                scale=scale,
                degradation=kind,
                lr_root=os.path.expanduser(_LR_DIR.value) if _LR_DIR.value else None,
                max_clips=key[-1],
            )
        else:
            if name in ("vimeo90k", "video_folder", "reds") and not _DATA_DIR.value:
                what = {
                    "vimeo90k": "the folder holding vimeo_septuplet",
                    "video_folder": "the folder of videos",
                    "reds": "the REDS root holding train_sharp/",
                }[name]
                raise UserError(
                    f"the test set {name} needs --data_dir ({what}); paths saved in a checkpoint are not used"
                )
            # the checkpoint's own paths are already emptied (checkpointing.load_model): only flags here
            data = config.data.copy_and_resolve_references()
            with data.unlocked():
                data.name, data.degradation = name, kind
                data.path = data.manual_dir = ""
                data.cache_dir, data.tfds_data_dir = _CACHE_DIR.value, _TFDS_DIR.value
                if name == "vimeo90k":
                    data.manual_dir = _DATA_DIR.value
                elif name in ("video_folder", "reds"):
                    data.path = _DATA_DIR.value
            cache[key] = pipeline.load_clip_pairs(data, "test", key[-1])
    return cache[key], name, kind


# ---------------------------------------------------------------- evaluating


def _lpips(cache: dict):
    """(weights, net) of --lpips_weights, loaded once; None without the flag."""
    if not _LPIPS.value:
        return None
    if "lpips" not in cache:
        from vsr_jax import lpips

        cache["lpips"] = lpips.load_lpips(os.path.expanduser(_LPIPS.value))
    return cache["lpips"]


def _predictor(model, params, config, flip: bool):
    """`evaluate.make_predictor` (whole clips for video models), or `flip_seq_predictor` when
    `flip` and the model is a video model."""
    if flip and int(config.data.num_frames) > 1:
        if _ENSEMBLE.value:
            raise UserError("--flip_seq and --self_ensemble do not combine; choose one (--noflip_seq)")
        return flip_seq_predictor(model, params)
    return make_predictor(
        model,
        params,
        num_frames=int(config.data.num_frames),
        batch_frames=int(config.eval.batch_frames),
        self_ensemble=_ENSEMBLE.value,
    )


def _run(evaluator, predict, desc: str) -> tuple[dict, float]:
    """(result, seconds) of `evaluator.run(predict)` behind a progress bar of clips."""
    from tqdm import tqdm

    t0 = time.time()
    with tqdm(total=len(evaluator.pairs), unit="clip", desc=desc) as bar:
        result = evaluator.run(predict, progress=lambda n: bar.update(1))
    return result, round(time.time() - t0, 2)


def evaluate_checkpoint(workdir: str, step: int | None, cache: dict) -> dict:
    """Evaluates one checkpoint; writes its metrics, CSV, figure and TensorBoard scalars."""
    import jax
    from clu import metric_writers

    config, model, params, step = load_run(workdir, step)
    pairs, name, kind = test_pairs(config, cache)
    scale = int(config.data.scale)
    crop = scale if _CROP.value < 0 else _CROP.value
    evaluator = ClipEvaluator(
        pairs,
        scale=scale,
        crop_border=crop,
        frame_stride=_STRIDE.value,
        center_frame=_CENTER.value,
        channel=_CHANNEL.value or "y",
        lpips_weights=_lpips(cache),
    )
    predict = _predictor(model, params, config, _FLIP_SEQ.value)
    result, seconds = _run(evaluator, predict, f"{os.path.basename(workdir.rstrip('/'))} step {step}")
    own = not _DATASET.value or _DATASET.value == config.data.name
    tag = name if own and kind == config.data.degradation else f"{name}_{kind}"
    result.update(
        step=int(step),
        total_steps=int(config.total_steps),
        model=config.model.name,
        dataset=tag,
        scale=scale,
        crop_border=crop,
        channel=evaluator.channel,
        flip_seq=bool(_FLIP_SEQ.value and int(config.data.num_frames) > 1),
        self_ensemble=_ENSEMBLE.value,
        frames=evaluator.frames,
        seconds=seconds,
        workdir=os.path.abspath(workdir),
    )
    if jax.process_index() == 0:
        out = os.path.join(workdir, "eval", str(step), *([] if tag == config.data.name else [tag]))
        writer = metric_writers.create_default_writer(os.path.join(workdir, "eval"), asynchronous=False)
        evaluator.report(
            result,
            out,
            predict=predict,
            writer=writer,
            step=step,
            scalar_prefix=tag,
            images=True,
            title=f"\n{workdir} step {step}, {tag} ×{scale}, PSNR/SSIM on {evaluator.channel.upper()}, crop {crop}:",
            footer=f"metrics: {os.path.join(out, 'metrics.json')}\n",
        )
        writer.close()
    return result


def _check_published_flags() -> None:
    what = "--weights" if _WEIGHTS.value else "--model"
    if not _DATASET.value:
        raise UserError(
            f"{what} needs --dataset ({', '.join(d for d in datasets.DATASETS if d != 'sample')}, or sample): "
            "a weight file has no held-out split"
        )
    if _WEIGHTS.value and _MODEL.value:
        raise UserError("give one of --weights and --model")
    for flag, given in (("--workdir", _WORKDIR.value), ("--step", _STEP.value is not None), ("--all", _ALL.value)):
        if given:
            raise UserError(f"{flag} is for training runs; --weights/--model score a weight file")
    if _WATCH.value:
        raise UserError("--watch is for training runs; --weights/--model score a weight file")


def evaluate_published(cache: dict) -> dict:
    """--weights=FILE or --model=NAME on --dataset with the test set's published protocol
    (see the module docstring); prints the table, writes it under --out when given."""
    _check_published_flags()
    name = _DATASET.value
    config, model, params, path, entry = load_published(os.path.expanduser(_WEIGHTS.value), _MODEL.value)
    proto = datasets.protocol(name)
    scale = int(config.data.scale)
    kind = _DEGRADATION.value or proto.degradation or datasets.trained_degradation(path, entry.task if entry else "")
    crop = proto.crop(scale) if _CROP.value < 0 else _CROP.value
    channel = _CHANNEL.value or proto.channel
    center = _CENTER.value if FLAGS["center_frame"].present else proto.center_frame
    video = int(config.data.num_frames) > 1
    flip = video and (_FLIP_SEQ.value if FLAGS["flip_seq"].present else proto.flip_seq)
    source, published = proto.source, (proto.crop(scale), proto.channel, proto.center_frame, video and proto.flip_seq)
    if (crop, channel, center, flip) != published:
        source += f", overridden: channel {channel}, crop_border {crop}, center_frame {center}, flip_seq {flip}"
    config.data.name, config.data.degradation = name, kind  # a fresh config, not a saved one
    pairs, _, _ = test_pairs(config, cache)
    evaluator = ClipEvaluator(
        pairs,
        scale=scale,
        crop_border=crop,
        frame_stride=_STRIDE.value,
        center_frame=center,
        channel=channel,
        lpips_weights=_lpips(cache),
    )
    predict = _predictor(model, params, config, flip)
    label = entry.name if _MODEL.value else os.path.basename(path)
    result, seconds = _run(evaluator, predict, label)
    for key in ("psnr", "ssim"):
        result[key] = result[f"{key}_{channel}"]
        result[f"bicubic_{key}"] = result[f"bicubic_{key}_{channel}"]
    result.update(
        model=config.model.name,
        weights=os.path.abspath(path),
        registry=entry.name if entry else "",
        published=entry.score if entry else "",
        dataset=name,
        degradation=kind,
        scale=scale,
        crop_border=crop,
        channel=channel,
        protocol=source,
        self_ensemble=_ENSEMBLE.value,
        frames=evaluator.frames,
        whole_clips=video,
        flip_seq=flip,
        seconds=seconds,
    )
    out = os.path.expanduser(_OUT.value) if _OUT.value else None
    summary = (
        f"{name} {channel.upper()} PSNR {result['psnr']:.4f} dB, SSIM {result['ssim']:.4f} "
        f"(bicubic {result['bicubic_psnr']:.4f} / {result['bicubic_ssim']:.4f})"
        + (f"; published for {entry.name}: {entry.score}" if entry and entry.score else "")
    )
    evaluator.report(
        result,
        out,
        predict=predict,
        title=(
            f"\n{label} ({config.model.name} x{scale}) on {name}, {kind.upper()} LR, "
            f"PSNR/SSIM on {channel.upper()}, crop {crop}{', centre frames' if center else ''}"
            f"{', each clip + its reverse averaged' if flip else ''}\n"
            f"protocol: {result['protocol']}"
        ),
        footer=summary + (f"\nmetrics: {os.path.join(out, 'metrics.json')}" if out else ""),
    )
    return result


def watch(workdir: str, cache: dict) -> list[dict]:
    """Evaluates each new checkpoint of `workdir` once; stops after the run's final step
    (`total_steps` of the checkpoint's config) or when no new checkpoint appeared for
    --idle_timeout seconds since the last evaluation."""
    from vsr_jax import checkpointing

    results, seen = [], set()
    last_new = time.time()
    logging.info("watching %s (idle timeout %.0f s)", workdir, _IDLE.value)
    while True:
        for step in [s for s in checkpoint_steps(workdir) if s not in seen]:
            seen.add(step)
            try:
                result = evaluate_checkpoint(workdir, step, cache)
            except (checkpointing.CheckpointError, OSError, ValueError) as e:
                if step in checkpoint_steps(workdir):
                    raise  # still there: a real problem (e.g. another model's checkpoint)
                # the trainer deleted it (keep-N) between listing and reading: move on
                logging.warning("checkpoint %d of %s vanished before it was read (%s); skipped", step, workdir, e)
                continue
            results.append(result)
            last_new = time.time()
            if result["step"] >= result["total_steps"]:
                print(f"vsr-eval: evaluated the final step {result['step']} of {workdir}; stopping")
                return results
        if time.time() - last_new > _IDLE.value:
            print(f"vsr-eval: no new checkpoint in {workdir} for {_IDLE.value:.0f} s; stopping")
            return results
        time.sleep(_POLL.value)


def folder_clips(pred_root: str, gt_root: str, max_clips: int = 0):
    """(name, prediction, ground truth) uint8 clips of two folders of the same layout: their
    clip folders / videos by name, or the two folders themselves as one clip; read one clip
    at a time. Raises UserError for a missing folder (at once) or clip, or shapes that differ."""
    for flag, path in (("--pred_dir", pred_root), ("--gt_dir", gt_root)):
        if not os.path.exists(path):
            raise UserError(f"{flag} {path} does not exist")
    names = datasets.clip_names(gt_root) if os.path.isdir(gt_root) else []
    jobs = [(n, os.path.join(pred_root, n), os.path.join(gt_root, n)) for n in names] or [
        (os.path.basename(os.path.normpath(gt_root)), pred_root, gt_root)
    ]

    def clips():
        for name, pred_path, gt_path in jobs[: max_clips or None]:
            if not os.path.exists(pred_path):
                raise UserError(f"{pred_root} has no {name!r} to compare with {gt_path}")
            pred, gt = datasets.read_clip(pred_path), datasets.read_clip(gt_path)
            if pred.shape != gt.shape:
                raise UserError(f"clip {name}: prediction {pred.shape} and ground truth {gt.shape} differ in shape")
            yield os.path.splitext(name)[0], pred, gt

    return clips()


def compare_folders() -> dict:
    """--pred_dir vs --gt_dir: PSNR/SSIM (Y, RGB), tOF (and LPIPS, tLP) without any model."""
    pred_root, gt_root = (os.path.expanduser(p) for p in (_PRED_DIR.value, _GT_DIR.value))
    crop = max(_CROP.value, 0)
    clips = folder_clips(pred_root, gt_root, _MAX_CLIPS.value)
    evaluator = ClipEvaluator(scale=1, crop_border=crop, lpips_weights=_lpips({}))  # bad weights fail before work
    result = evaluator.score(clips)
    result.update(crop_border=crop, pred_dir=os.path.abspath(pred_root), gt_dir=os.path.abspath(gt_root))
    evaluator.report(result, os.path.expanduser(_OUT.value) if _OUT.value else None, label="prediction")
    return result


def comparison_table(results: list[dict]) -> tuple[str, str]:
    """(markdown, csv) with one row per evaluated checkpoint."""
    cols = ["psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "tof", "warp_error", "lpips", "tlp"]
    head = ["run", "model", "step", "dataset", *cols, "bicubic_psnr_y", "bicubic_ssim_y"]
    rows = []
    for r in results:
        row = [os.path.basename(r["workdir"]), r["model"], r["step"], r["dataset"]]
        row += [r.get(k, float("nan")) for k in cols + ["bicubic_psnr_y", "bicubic_ssim_y"]]
        rows.append(row)
    fmt = lambda v: f"{v:.4f}" if isinstance(v, float) else str(v)  # noqa: E731
    md = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    md += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    csv = [",".join(head)] + [",".join(fmt(v) for v in row) for row in rows]
    return "\n".join(md) + "\n", "\n".join(csv) + "\n"


def _workdirs() -> list[str]:
    out = []
    for pattern in _WORKDIR.value:
        matches = sorted(glob.glob(os.path.expanduser(pattern))) if glob.has_magic(pattern) else [pattern]
        if not matches:
            raise UserError(f"--workdir {pattern} matches nothing")
        out += [m for m in matches if not glob.has_magic(pattern) or os.path.isdir(os.path.join(m, "checkpoints"))]
    return out


@cli.exit_path("vsr-eval")
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    cli.quiet_library_logs()
    if _PRED_DIR.value or _GT_DIR.value:
        if not (_PRED_DIR.value and _GT_DIR.value):
            raise UserError("--pred_dir and --gt_dir go together")
        compare_folders()
        return
    if _WEIGHTS.value or _MODEL.value:
        evaluate_published({})
        return
    workdirs = _workdirs()
    if not workdirs:
        raise UserError("give --workdir=RUN (or --pred_dir/--gt_dir)")
    cache, results = {}, []
    _lpips(cache)  # a bad weights file fails before any work
    for workdir in workdirs:
        if _WATCH.value:
            results += watch(workdir, cache)
        elif _ALL.value:
            steps = checkpoint_steps(workdir)
            if not steps:
                raise UserError(f"no checkpoints in {workdir}; train a model there first")
            results += [evaluate_checkpoint(workdir, s, cache) for s in steps]
        else:
            results.append(evaluate_checkpoint(workdir, _STEP.value, cache))
    if len(results) > 1 or _COMPARE_OUT.value:
        md, csv = comparison_table(results)
        print(md)
        if _COMPARE_OUT.value:
            os.makedirs(os.path.dirname(os.path.abspath(_COMPARE_OUT.value)), exist_ok=True)
            for ext, text in (("md", md), ("csv", csv)):
                fileio.write_text(f"{_COMPARE_OUT.value}.{ext}", text)


def run():
    """Console-script entry point (`vsr-eval`)."""
    app.run(main)


if __name__ == "__main__":
    run()
