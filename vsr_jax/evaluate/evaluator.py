"""The one held-out evaluator: built once from the test clips and the protocol, then
`run(predict)` -> result, and `report(result, ...)` -> metrics.json / metrics.csv / figure /
TensorBoard scalars and images / the printed table. Training's final evaluation, vsr-eval's
checkpoints and published weight files use it alike; `score` scores predictions already on
disk (vsr-eval --pred_dir) through the same per-clip code.

Protocol and result keys: `vsr_jax.evaluate` (package docstring, `evaluate_clips`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence

import numpy as np

from vsr_jax import temporal_metrics
from vsr_jax.evaluate import (
    Predict,
    bicubic_upscale,
    format_table,
    frame_metrics,
    preview_rows,
    save_figure,
    summarize,
    to_uint8,
    write_csv,
    write_json,
)


class ClipEvaluator:
    """Scores super-resolved clips against their ground truth under one protocol.

    Args:
      pairs: objects with `.name`, `.lr` (T,h,w,3) uint8 and `.hr` (T,H,W,3) uint8 (may be
        empty for `score`, which brings its own clips).
      scale, crop_border: the scale; pixels cut from each edge before PSNR/SSIM.
      frame_stride: score every k-th frame (the model still sees every frame).
      center_frame: score only each clip's middle frame (Vimeo-90K's published protocol).
      channel: "y" or "rgb", the headline PSNR/SSIM of the printed table (both are computed).
      lpips_weights: (weights, net) from `vsr_jax.lpips.load_lpips`: adds LPIPS and tLP.
      figure_clips: clips in the samples figure (None: all).
    """

    def __init__(
        self,
        pairs: Sequence = (),
        *,
        scale: int,
        crop_border: int,
        frame_stride: int = 1,
        center_frame: bool = False,
        channel: str = "y",
        lpips_weights: tuple | None = None,
        figure_clips: int | None = 4,
    ):
        self.pairs, self.scale, self.crop_border = pairs, int(scale), int(crop_border)
        self.frame_stride, self.center_frame, self.channel = int(frame_stride), bool(center_frame), channel
        self.lpips_weights, self.figure_clips = lpips_weights, figure_clips
        # tOF, warping error and tLP compare consecutive frames
        self.temporal = self.frame_stride == 1 and not self.center_frame

    @property
    def frames(self) -> str:
        """Which frames are scored, as results record it: "center", "all" or "every k"."""
        return "center" if self.center_frame else ("all" if self.frame_stride == 1 else f"every {self.frame_stride}")

    def _frames(self, n: int) -> np.ndarray:
        return np.array([n // 2]) if self.center_frame else np.arange(0, n, self.frame_stride)

    def run(self, predict: Predict, progress: Callable[[int], None] | None = None) -> dict:
        """The model (`predict`: uint8 LR clip -> [0,1] SR clip) and bicubic on every clip;
        `progress` is called with the number of frames scored after each clip."""
        clips = {}
        for pair in self.pairs:
            frames = self._frames(len(pair.lr))
            sr, lr = predict(pair.lr)[frames], pair.lr[frames]
            bic = np.concatenate([np.asarray(bicubic_upscale(lr[i : i + 8], self.scale)) for i in range(0, len(lr), 8)])
            clips[pair.name] = self._clip({"": sr, "bicubic_": bic}, pair.hr[frames])
            if progress is not None:
                progress(len(frames))
        return summarize(clips)

    def score(self, clips: Iterable[tuple[str, np.ndarray, np.ndarray]], progress=None) -> dict:
        """Predictions made elsewhere: (name, uint8 prediction, uint8 ground truth) per clip,
        same shapes; no bicubic baseline (there is no LR)."""
        out = {}
        for name, pred, gt in clips:
            frames = self._frames(len(gt))
            out[name] = self._clip({"": pred[frames].astype(np.float32) / 255.0}, gt[frames])
            if progress is not None:
                progress(len(frames))
        return summarize(out)

    def _clip(self, outputs: dict, hr: np.ndarray) -> dict:
        """Per-clip means of every metric of each [0,1] output in `outputs` (key prefix -> frames) vs uint8 `hr`."""
        clip = {}
        for prefix, out in outputs.items():
            clip.update({prefix + k: float(np.mean(v)) for k, v in frame_metrics(out, hr, self.crop_border).items()})
        clip["num_frames"] = int(len(hr))
        temporal = self.temporal and len(hr) > 1
        if temporal:
            ref = temporal_metrics.TemporalReference(hr)  # the truth's flows, once for every output
            for prefix, out in outputs.items():
                clip[f"{prefix}tof"] = ref.tof(to_uint8(out))
                clip[f"{prefix}warp_error"] = ref.warping_error(to_uint8(out))
        if self.lpips_weights is not None:
            from vsr_jax import lpips

            weights, net = self.lpips_weights
            for prefix, out in outputs.items():
                d = [lpips.distance(weights, out[i : i + 4], hr[i : i + 4] / 255.0, net) for i in range(0, len(hr), 4)]
                clip[f"{prefix}lpips"] = float(np.mean(np.concatenate([np.asarray(v) for v in d])))
                if temporal:
                    clip[f"{prefix}tlp"] = lpips.tlp(weights, to_uint8(out), hr, net)
        return clip

    def samples(self, predict: Predict) -> list:
        """Preview rows (LR / bicubic / SR / HR of each clip's middle frame) of the figure's clips."""
        return preview_rows(predict, self.pairs[: self.figure_clips], scale=self.scale)

    def report(
        self,
        result: dict,
        out_dir: str | None = None,
        *,
        predict: Predict | None = None,
        figure: str = "samples.png",
        csv: bool = True,
        writer=None,
        step: int | None = None,
        scalar_prefix: str = "eval",
        images: bool = False,
        title: str | None = None,
        footer: str | None = None,
        label: str = "model",
    ) -> None:
        """Sends `result` out: `writer` (a clu metric writer) gets every float as a scalar
        `scalar_prefix/key` at `step` (and, with `images`, the figure's panels); on process 0
        `out_dir` gets metrics.json, metrics.csv (`csv`) and the figure (`figure`, when
        `predict` is given), then the table prints, between `title` and `footer` when given."""
        import jax

        if writer is not None:
            keys = [k for k, v in result.items() if isinstance(v, float) and k != "seconds"]
            writer.write_scalars(step, {f"{scalar_prefix}/{k}": result[k] for k in keys})
        if jax.process_index() != 0:
            return
        rows = self.samples(predict) if predict is not None and (out_dir or (writer is not None and images)) else None
        if out_dir:
            os.makedirs(out_dir, exist_ok=True)
            write_json(result, os.path.join(out_dir, "metrics.json"))
            if csv:
                write_csv(result, os.path.join(out_dir, "metrics.csv"))
            if rows is not None and figure:
                save_figure(rows, os.path.join(out_dir, figure))
        if writer is not None and images and rows is not None:
            writer.write_images(step, {f"{scalar_prefix}/{n}": img[None] for n, _, img in rows})
        table = format_table(channel_view(result, self.channel), label=label)
        print(table if title is None else f"{title}\n{table}")
        if footer is not None:
            print(footer)


def channel_view(result: dict, channel: str) -> dict:
    """`result` whose psnr_y/ssim_y (and bicubic_) columns show `channel`'s numbers, for the table."""
    if channel == "y":
        return result

    def swap(d):
        keys = [f"{p}{m}" for p in ("", "bicubic_") for m in ("psnr", "ssim")]
        return {**d, **{f"{k}_y": d[f"{k}_rgb"] for k in keys if f"{k}_rgb" in d}}

    return {**swap(result), "clips": {name: swap(clip) for name, clip in result["clips"].items()}}
