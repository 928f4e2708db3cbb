"""evaluate.ClipEvaluator: one per-clip code path for a model's predictions and for frames on
disk, and one report (json / csv / figure / scalars / table)."""

import json

import numpy as np

from vsr_jax import evaluate
from vsr_jax.data.pipeline import ClipPair


def _pairs(n=2, t=3, h=16, w=20, scale=2):
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        hr = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
        lr = hr[:, ::scale, ::scale]
        out.append(ClipPair(name=f"clip{i}", lr=lr, hr=hr))
    return out


def _nearest(lr):  # a stand-in model: nearest ×2, in [0,1]
    return np.repeat(np.repeat(lr, 2, axis=1), 2, axis=2).astype(np.float32) / 255.0


def test_scoring_saved_predictions_gives_the_models_numbers():
    pairs = _pairs()
    ev = evaluate.ClipEvaluator(pairs, scale=2, crop_border=2)
    result = ev.run(_nearest)
    assert result == evaluate.evaluate_clips(_nearest, pairs, scale=2, crop_border=2)
    scored = ev.score((p.name, evaluate.to_uint8(_nearest(p.lr)), p.hr) for p in pairs)
    model_keys = [k for k in result["clips"]["clip0"] if not k.startswith("bicubic_")]
    assert list(scored["clips"]["clip0"]) == model_keys  # same keys, same order (the CSV's columns)
    for name in ("clip0", "clip1"):
        for k in model_keys:
            assert scored["clips"][name][k] == result["clips"][name][k], (name, k)
    assert "tof" in scored and ev.frames == "all"
    center = evaluate.ClipEvaluator(pairs, scale=2, crop_border=2, center_frame=True)
    assert center.frames == "center" and "tof" not in center.run(_nearest) and center.run(_nearest)["num_frames"] == 2


class _Writer:
    def __init__(self):
        self.scalars, self.images = {}, {}

    def write_scalars(self, step, scalars):
        self.scalars[step] = scalars

    def write_images(self, step, images):
        self.images[step] = images


def test_report_writes_every_output_once(tmp_path, capsys):
    pairs = _pairs()
    ev = evaluate.ClipEvaluator(pairs, scale=2, crop_border=2, channel="rgb", figure_clips=1)
    result = ev.run(_nearest)
    result.update(seconds=1.5, step=7)
    writer = _Writer()
    ev.report(
        result, str(tmp_path / "a"), predict=_nearest, writer=writer, step=7, scalar_prefix="vid4",
        images=True, title="TITLE", footer="FOOTER",
    )  # fmt: skip
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["metrics.csv", "metrics.json", "samples.png"]
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["psnr_y"] == result["psnr_y"]
    assert "vid4/psnr_y" in writer.scalars[7] and "vid4/seconds" not in writer.scalars[7]
    assert list(writer.images[7]) == ["vid4/clip0"]
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "TITLE" and out[-1] == "FOOTER"
    mean_row = next(line for line in out if line.startswith("mean over clips"))
    assert f"{result['psnr_rgb']:.3f}" in mean_row  # the headline channel's numbers
    # training's form: no CSV, its own figure name, scalars without images
    ev.report(result, str(tmp_path / "b"), predict=_nearest, csv=False, figure="samples_step7.png")
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == ["metrics.json", "samples_step7.png"]
