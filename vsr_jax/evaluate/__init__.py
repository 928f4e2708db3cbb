"""Held-out evaluation: super-resolve whole clips, Y-PSNR/Y-SSIM vs bicubic, figures.

Protocol (as BasicSR / published VSR tables): the model's output is clipped to [0,1] and
rounded to uint8 levels, then compared with the HR frames on the Y channel (BT.601) with
`crop_border` pixels (default: the scale) removed from every edge. The bicubic baseline is
MATLAB bicubic upsampling of the same uint8 LR frames. Per-clip numbers are means over the
clip's frames; the overall number is the mean over clips.

This module never imports the training code: it works from a model and its params.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vsr_jax import fileio, metrics
from vsr_jax.models import ensemble

Predict = Callable[[np.ndarray], np.ndarray]  # uint8 LR (T,h,w,3) -> float SR (T,H,W,3) in [0,1]


def make_predictor(model, params, *, num_frames: int, batch_frames: int = 8, self_ensemble: bool = False) -> Predict:
    """A function that super-resolves a whole uint8 LR clip (T, h, w, 3) -> (T, H, W, 3).

    Single-frame models (`num_frames == 1`) see batches of `batch_frames` frames (the last
    batch padded so that one compiled shape serves the clip); video models see the clip
    as one sequence (1, T, h, w, 3). `self_ensemble`: the mean of the outputs for the 8
    flips/transposes of the input, each transformed back (EDSR's ×8 test-time ensemble;
    8× the compute).
    """

    def forward(p, x):
        if not self_ensemble:
            return model.apply({"params": p}, x, train=False)
        return ensemble.dihedral_mean(lambda xk: model.apply({"params": p}, xk, train=False), x)[0]

    apply = jax.jit(lambda p, x: jnp.clip(forward(p, x), 0.0, 1.0))

    def predict(lr: np.ndarray) -> np.ndarray:
        x = np.asarray(lr, np.float32) / 255.0
        if num_frames > 1:
            return np.asarray(apply(params, x[None]))[0]
        out = []
        for i in range(0, len(x), batch_frames):
            chunk = x[i : i + batch_frames]
            pad = batch_frames - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, axis=0)])
            out.append(np.asarray(apply(params, chunk[:, None]))[: batch_frames - pad, 0])
        return np.concatenate(out)

    return predict


def flip_seq_predictor(model, params):
    """A `Predict` of a video model as BasicSR's `VideoRecurrentModel.test` with flip_seq: the
    clip followed by its reverse in one call, output t = ½(out[t] + out[2n−1−t]), then clipped."""
    apply = jax.jit(lambda p, x: model.apply({"params": p}, x, train=False))

    def predict(lr):
        x = np.asarray(lr, np.float32) / np.float32(255)
        n = len(x)
        out = np.asarray(apply(params, np.concatenate([x, x[::-1]])[None]))[0]
        return np.clip(np.float32(0.5) * (out[:n] + out[n:][::-1]), 0.0, 1.0)

    return predict


@functools.partial(jax.jit, static_argnames=("scale",))
def bicubic_upscale(lr_u8, scale: int):
    """The bicubic baseline: MATLAB bicubic ×scale of uint8 LR frames -> [0,1] float32."""
    from vsr_jax.data import degrade  # here: vsr-upscale reads runs through this package, never data/

    return jnp.clip(degrade.imresize(lr_u8.astype(jnp.float32) / 255.0, scale), 0.0, 1.0)


def to_uint8(frames) -> np.ndarray:
    """[0,1] frames -> uint8 (the levels `metrics.quantize` rounds to, as a saved PNG)."""
    return np.round(np.asarray(metrics.quantize(frames)) * 255.0).astype(np.uint8)


@functools.partial(jax.jit, static_argnames=("crop_border",))
def _frame_metrics(pred, hr_u8, crop_border: int):
    """Per-frame {psnr_y, ssim_y, psnr_rgb, ssim_rgb} of [0,1] frames (quantised) vs uint8 HR."""
    pred = metrics.quantize(pred)
    hr = hr_u8.astype(jnp.float32) / 255.0
    out = {}
    for space, y in (("y", True), ("rgb", False)):
        kw = dict(crop_border=crop_border, y_channel=y)
        out[f"psnr_{space}"], out[f"ssim_{space}"] = metrics.psnr(pred, hr, **kw), metrics.ssim(pred, hr, **kw)
    return out


def frame_metrics(pred, hr_u8, crop_border: int, chunk: int = 8) -> dict:
    """`_frame_metrics` over a whole clip in chunks of `chunk` frames: {name: (T,) numpy}."""
    parts = [_frame_metrics(pred[i : i + chunk], hr_u8[i : i + chunk], crop_border) for i in range(0, len(pred), chunk)]
    return {k: np.concatenate([np.asarray(p[k]) for p in parts]) for k in parts[0]}


METRIC_KEYS = ("psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb")


def evaluate_clips(
    predict: Predict,
    pairs: Sequence,
    *,
    scale: int,
    crop_border: int,
    frame_stride: int = 1,
    center_frame: bool = False,
    lpips_weights: tuple | None = None,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """PSNR / SSIM (Y and RGB) and tOF of the model and of bicubic on whole clips.

    Args:
      predict: uint8 LR clip -> SR clip in [0,1] (see `make_predictor`).
      pairs: objects with `.name`, `.lr` (T,h,w,3) uint8 and `.hr` (T,H,W,3) uint8.
      frame_stride: score every k-th frame (the model still sees every frame).
      center_frame: score only the middle frame of each clip (Vimeo-90K's published
        protocol: frame 4 of each septuplet); the model still sees the whole clip.
      lpips_weights: (weights, net) from `vsr_jax.lpips.load_lpips`: adds "lpips" (mean
        over frames) and "tlp" (TecoGAN's) for the model and bicubic.
      progress: called with the number of frames done after each clip.
    Returns:
      {"psnr_y", "ssim_y", "psnr_rgb", "ssim_rgb", "bicubic_<each>", "num_frames", "clips": {...}}
      plus "tof", "warp_error" and their "bicubic_" twins (`vsr_jax.temporal_metrics`)
      when `frame_stride` is 1 (they need consecutive frames). Clip means, then the mean over
      clips (as BasicSR averages). PSNR is +inf for a frame equal to the ground truth.
    """
    evaluator = ClipEvaluator(
        pairs,
        scale=scale,
        crop_border=crop_border,
        frame_stride=frame_stride,
        center_frame=center_frame,
        lpips_weights=lpips_weights,
    )
    return evaluator.run(predict, progress)


def summarize(clips: dict) -> dict:
    """Mean over clips of every per-clip number, the total frame count and the clips."""
    keys = list(dict.fromkeys(k for c in clips.values() for k in c if k != "num_frames"))
    result = {k: float(np.mean([c[k] for c in clips.values() if k in c])) for k in keys}
    result["num_frames"] = int(sum(c["num_frames"] for c in clips.values()))
    result["clips"] = clips
    return result


def format_table(result: dict, label: str = "model") -> str:
    """A text table: one row per clip and the mean; Y-PSNR, Y-SSIM and tOF (when present),
    bicubic next to `label` when the result has the bicubic baseline."""
    cols = [("PSNR", "psnr_y", 3), ("SSIM", "ssim_y", 4)] + ([("tOF", "tof", 4)] if "tof" in result else [])
    head, fields = f"{'clip':<18}{'frames':>7}", []
    for title, key, digits in cols:
        for prefix, name in (("bicubic_", "bicubic"), ("", label)):
            if prefix + key in result:
                text = f"{name} {title}"
                head += f"{text:>{max(len(text) + 2, 12)}}"
                fields.append((prefix + key, max(len(text) + 2, 12), digits))
    rows = [head, "-" * len(head)]
    for name, r in list(result["clips"].items()) + [("mean over clips", result)]:
        cells = "".join(f"{r[k]:>{w}.{d}f}" if k in r else f"{'–':>{w}}" for k, w, d in fields)
        rows.append(f"{name[:17]:<18}{r['num_frames']:>7}" + cells)
    return "\n".join(rows)


def panels(lr_u8: np.ndarray, bicubic: np.ndarray, sr: np.ndarray, hr_u8: np.ndarray, max_hw=(192, 256), zoom=4):
    """LR (nearest-upscaled) / bicubic / SR / HR of one frame side by side, uint8.

    Top row: a centre crop of up to `max_hw`; bottom row: the middle 1/`zoom` of that crop
    enlarged ×`zoom` (nearest), so the detail each method recovers is visible.
    (2·H', 4·W', 3) where (H', W') is the crop size.
    """
    scale = hr_u8.shape[0] // lr_u8.shape[0]
    lr_big = np.repeat(np.repeat(lr_u8, scale, axis=0), scale, axis=1)
    to_u8 = lambda x: np.floor(np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8)  # noqa: E731
    imgs = [lr_big, to_u8(bicubic), to_u8(sr), hr_u8]
    h, w = hr_u8.shape[:2]
    ch, cw = min(h, max_hw[0]), min(w, max_hw[1])
    y0, x0 = (h - ch) // 2, (w - cw) // 2
    crops = [im[y0 : y0 + ch, x0 : x0 + cw] for im in imgs]
    zh, zw = max(1, ch // zoom), max(1, cw // zoom)
    zy, zx = (ch - zh) // 2, (cw - zw) // 2
    zoomed = []
    for c in crops:
        z = np.repeat(np.repeat(c[zy : zy + zh, zx : zx + zw], zoom, axis=0), zoom, axis=1)[:ch, :cw]
        zoomed.append(np.pad(z, ((0, ch - z.shape[0]), (0, cw - z.shape[1]), (0, 0))))
    return np.concatenate([np.concatenate(crops, axis=1), np.concatenate(zoomed, axis=1)], axis=0)


def preview_rows(predict: Predict, pairs: Sequence, *, scale: int, context: int = 3):
    """[(clip name, frame index, panels)] for the middle frame of each clip.

    The model sees the middle frame with up to `context` neighbours on each side, so video
    models get temporal context and single-frame models little extra work.
    """
    rows = []
    for pair in pairs:
        mid = len(pair.lr) // 2
        a, b = max(0, mid - context), min(len(pair.lr), mid + context + 1)
        sr = predict(pair.lr[a:b])[mid - a]
        bic = np.asarray(bicubic_upscale(pair.lr[mid : mid + 1], scale))[0]
        rows.append((pair.name, mid, panels(pair.lr[mid], bic, sr, pair.hr[mid])))
    return rows


def save_figure(rows, path: str, labels: Sequence[str] = ("LR (nearest)", "bicubic", "SR (model)", "HR")) -> None:
    """Writes preview rows as one labelled PNG (rows of LR / bicubic / SR / HR)."""
    from PIL import Image, ImageDraw

    strip = 16
    width = max(r[2].shape[1] for r in rows)
    height = sum(r[2].shape[0] + strip for r in rows)
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    y = 0
    for name, frame, img in rows:
        pw = img.shape[1] // len(labels)
        for k, label in enumerate(labels):
            draw.text((k * pw + 4, y + 2), f"{label}" if k else f"{label}  {name} #{frame}", fill=(0, 0, 0))
        canvas.paste(Image.fromarray(img), (0, y + strip))
        y += img.shape[0] + strip
    with fileio.atomic_write(path, "wb") as f:
        canvas.save(f, format="PNG")


def write_csv(result: dict, path: str) -> None:
    """One row per clip and a 'mean over clips' row, every metric as a column."""
    import csv

    keys = list(dict.fromkeys(k for c in result["clips"].values() for k in c))
    with fileio.atomic_write(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["clip"] + keys)
        for name, clip in result["clips"].items():
            w.writerow([name] + [clip.get(k, "") for k in keys])
        w.writerow(["mean over clips"] + [result[k] for k in keys])


def write_json(result: dict, path: str) -> None:
    fileio.write_json(path, result, indent=2, sort_keys=True)


# the evaluator is built on the functions above (it imports them from here)
from vsr_jax.evaluate.evaluator import ClipEvaluator  # noqa: E402
