"""The Colab notebook (colab/vsr_jax_tpu.ipynb) runs top to bottom, as a reader runs it.

Executed with nbclient in a fresh IPython kernel of this interpreter, under the `tiny`
preset of configs/gan.py: it trains (generator and discriminator), evaluates with
vsr-eval, shows the figure and upscales a short clip with vsr-upscale, each in its own
process. The install step is skipped (vsr_jax is importable here), Google Drive and
TensorBoard are left alone (not Colab).
"""

import json
import math
import re
import sys

import av
import nbformat
import numpy as np
from nbclient import NotebookClient
from PIL import Image

from tests.conftest import ROOT, load_config

NOTEBOOK = ROOT / "colab" / "vsr_jax_tpu.ipynb"
KERNEL = "vsr-jax-notebook-test"


def _kernelspec(folder):
    """A kernelspec for this interpreter under `folder` (used through JUPYTER_PATH), so the
    kernel runs in this environment whatever `python3` kernel the machine has."""
    spec = folder / "kernels" / KERNEL
    spec.mkdir(parents=True)
    argv = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    (spec / "kernel.json").write_text(json.dumps({"argv": argv, "display_name": KERNEL, "language": "python"}))


def _outputs(nb) -> dict:
    """{cell id: (all stream text, [output mime types])} of the executed code cells."""
    result = {}
    for cell in nb.cells:
        if cell.cell_type == "code":
            text = "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")
            mimes = [m for o in cell.outputs if o.output_type == "display_data" for m in o.data]
            result[cell.id] = (text, mimes)
    return result


def test_notebook_trains_evaluates_and_upscales(tmp_path, monkeypatch):
    _kernelspec(tmp_path / "jupyter")
    workdir = tmp_path / "run"
    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path / "jupyter"))
    monkeypatch.setenv("VSR_JAX_NOTEBOOK_PRESET", "tiny")
    monkeypatch.setenv("VSR_JAX_NOTEBOOK_WORKDIR", str(workdir))
    monkeypatch.delenv("VSR_JAX_NOTEBOOK_TENSORBOARD", raising=False)

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "the notebook is stored with outputs"
    NotebookClient(nb, kernel_name=KERNEL, timeout=300, resources={"metadata": {"path": str(ROOT)}}).execute()
    out = _outputs(nb)

    config = load_config("gan", "tiny")
    step = int(config.total_steps)
    assert re.search(r"backend: (cpu|gpu|tpu)\n", out["runtime"][0]), out["runtime"][0]
    assert f"tensorboard --logdir {workdir}" in out["tensorboard"][0]  # not started outside Colab

    # training: a checkpoint at the last step, and the discriminator trained
    assert (workdir / "checkpoints" / str(step)).is_dir()
    assert config.gan.loss and int(config.gan.pretrain_steps) < step
    d_loss = re.search(rf"\[{step}\] .*\bloss_d=([-\d.e]+)", out["train"][0])
    assert d_loss and float(d_loss.group(1)) > 0, out["train"][0][-2000:]

    # vsr-eval: metrics of the final step, and the table the notebook printed from them
    metrics = json.loads((workdir / "eval" / str(step) / "metrics.json").read_text())
    assert metrics["step"] == step and metrics["model"] == config.model.name
    for key in ("psnr_y", "ssim_y", "bicubic_psnr_y", "bicubic_ssim_y"):
        assert math.isfinite(metrics[key]), key
    assert 15 < metrics["psnr_y"] < 60 and 0.3 < metrics["ssim_y"] <= 1
    table = out["evaluate"][0]
    for label, key, fmt in (("Y-PSNR", "psnr_y", ".2f"), ("Y-SSIM", "ssim_y", ".4f")):
        row = next(line for line in table.splitlines() if line.startswith(label))
        assert row.split()[-2:] == [format(metrics[f"bicubic_{key}"], fmt), format(metrics[key], fmt)], row

    # the LR / bicubic / SR / HR figure, shown in the notebook
    with Image.open(workdir / "eval" / str(step) / "samples.png") as figure:
        assert figure.format == "PNG"
        pixels = np.asarray(figure.convert("RGB"))
    assert pixels.shape[1] >= 4 * 32 and pixels.shape[0] >= 32 and pixels.std() > 1
    assert "image/png" in out["figure"][1]

    # vsr-upscale: every input frame, ×4 the size, and the comparison and video shown
    lr_files = sorted((workdir / "upscale" / "lr").glob("*.png"))
    assert len(lr_files) >= 2
    with Image.open(lr_files[0]) as lr:
        lr_w, lr_h = lr.size
    with av.open(str(workdir / "upscale" / "sr_x4.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24", threads=1) for f in container.decode(video=0)]
    assert len(frames) == len(lr_files)
    assert frames[0].shape == (4 * lr_h, 4 * lr_w, 3)
    assert "image/png" in out["show"][1] and "text/html" in out["show"][1]
    with Image.open(workdir / "upscale" / "compare.png") as compare:
        assert compare.size == (3 * 4 * lr_w, 4 * lr_h)
