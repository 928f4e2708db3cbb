"""`vsr-eval --weights` against BasicSR's own test path, on the same files (issue 19).

A narrow BasicVSR with seeded weights (tests/data/published/make_basicvsr.py's recipe) is
saved by torch as a BasicSR ``{'params': ...}`` .pth; fake Vid4 and REDS4 trees (HR and an LR
folder, so both sides read the same LR) are written; then

* BasicSR 1.4.2 (the authors' venv): `BasicVSR` on each whole clip, `tensor2img`, and
  `basicsr.metrics.calculate_psnr/ssim` with the published settings (Vid4: crop_border 0,
  test_y_channel true; REDS4: crop_border 0, test_y_channel false), mean per clip, mean
  over clips (as `VideoRecurrentModel.nondist_validation`);
* ours: ``python -m vsr_jax.evaluate --weights=FILE --dataset=vid4|reds4 --data_dir=ROOT``
  with its defaults (the published protocol), in the project's venv;

and prints both per clip; a third case adds flip_seq on Vid4 (BasicSR's Vimeo-90K test
option: the clip and its reverse, outputs averaged). Measured (BasicSR 1.4.2, torch 2.13 CPU; 4 clips of 7 frames of
40×48 LR): Vid4 mean |diff| 3.3e-7 dB PSNR, 9.8e-8 SSIM; REDS4 9.1e-7 dB, 8.4e-9;
Vid4 with flip_seq 8.0e-7 dB, 9.2e-9.
Run with the authors' venv (see tests/data/published/README.md):

    PYTHONPATH=tests/data/published/refstub /tmp/refvenv/bin/python tests/data/published/check_eval_weights.py
"""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib
import subprocess
import sys
import tempfile

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[3]
PROJECT_PYTHON = os.environ.get("VSR_PYTHON", str(REPO / ".venv" / "bin" / "python"))
T, H, W = 7, 40, 48  # LR frames per clip and size (SpyNet of BasicSR needs sides over 32 px)
VID4, REDS4 = ("calendar", "city", "foliage", "walk"), ("000", "011", "015", "020")
# (dataset, clips, Y channel, LR folder (BasicSR's test option files'), flip_seq)
CASES = [
    ("vid4", VID4, True, "BIx4", False),
    ("reds4", REDS4, False, "sharp_bicubic", False),
    ("vid4", VID4, True, "BIx4", True),
]


def _recipe():
    spec = importlib.util.spec_from_file_location("make_basicvsr", REPO / "tests/data/published/make_basicvsr.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def clip(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(HR (T, 4H, 4W, 3), LR (T, H, W, 3)) uint8 RGB: a smooth texture moving 1 px per LR
    frame, plus noise; LR the 4×4 mean of HR (any LR does: both sides read the same file)."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 255, (H + T + 4, W + T + 4, 3))
    hr = []
    for t in range(T):
        f = np.kron(coarse[t : t + H, t : t + W], np.ones((4, 4, 1))) + rng.normal(0, 4, (4 * H, 4 * W, 3))
        hr.append(np.clip(np.rint(f), 0, 255).astype(np.uint8))
    hr = np.stack(hr)
    lr = np.rint(hr.reshape(T, H, 4, W, 4, 3).mean(axis=(2, 4))).astype(np.uint8)
    return hr, lr


def write_tree(root: pathlib.Path, names, lr_dir: str) -> None:
    import cv2

    for k, name in enumerate(names):
        hr, lr = clip(100 + k)
        for sub, frames in (("GT", hr), (lr_dir, lr)):
            (root / sub / name).mkdir(parents=True)
            for t, f in enumerate(frames):
                cv2.imwrite(str(root / sub / name / f"{t:08d}.png"), f[..., ::-1])


def basicsr_scores(net, root: pathlib.Path, names, lr_dir: str, y: bool, flip: bool) -> dict:
    import cv2
    import torch
    from basicsr.metrics import calculate_psnr, calculate_ssim
    from basicsr.utils import img2tensor, tensor2img

    def read(sub, name):
        return [cv2.imread(str(p)) for p in sorted((root / sub / name).iterdir())]  # BGR, as BasicSR reads

    out = {}
    for name in names:
        lq = torch.stack(img2tensor([f.astype(np.float32) / 255.0 for f in read(lr_dir, name)]))[None]
        n = lq.size(1)
        if flip:  # as VideoRecurrentModel.test with val.flip_seq
            lq = torch.cat([lq, lq.flip(1)], dim=1)
        with torch.no_grad():
            sr = net(lq)
        if flip:
            sr = 0.5 * (sr[:, :n] + sr[:, n:].flip(1))
        sr = sr[0]
        gts = read("GT", name)
        psnr = [calculate_psnr(tensor2img(s), g, 0, test_y_channel=y) for s, g in zip(sr, gts, strict=True)]
        ssim = [calculate_ssim(tensor2img(s), g, 0, test_y_channel=y) for s, g in zip(sr, gts, strict=True)]
        out[name] = (float(np.mean(psnr)), float(np.mean(ssim)))
    return out


def main() -> None:
    import torch
    from basicsr.archs.basicvsr_arch import BasicVSR

    make = _recipe()
    sd = make.seeded_state_dict()
    net = BasicVSR(num_feat=make.NUM_FEAT, num_block=make.NUM_BLOCK).eval()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        weights = tmp / "basicvsr_narrow.pth"
        torch.save({"params": {k: torch.from_numpy(v) for k, v in sd.items()}}, weights)
        for k, (dataset, names, y, lr_dir, flip) in enumerate(CASES):
            root = tmp / dataset
            if not root.exists():
                write_tree(root, names, lr_dir)
            theirs = basicsr_scores(net, root, names, lr_dir, y, flip)
            out = tmp / f"out_{k}"
            proc = subprocess.run(
                [PROJECT_PYTHON, "-m", "vsr_jax.evaluate", f"--weights={weights}", f"--dataset={dataset}"]
                + [f"--data_dir={root}", f"--out={out}"]
                + (["--flip_seq"] if flip else []),
                cwd=REPO,
                capture_output=True,
                text=True,
            )
            if proc.returncode:
                sys.exit(proc.stderr[-3000:])
            ours = json.loads((out / "metrics.json").read_text())
            space = "y" if y else "rgb"
            print(f"{dataset} ({'Y' if y else 'RGB'}, crop 0; LR read from {lr_dir}/{'; flip_seq' if flip else ''}):")
            print(f"  {'clip':<10}{'BasicSR PSNR':>14}{'ours':>12}{'BasicSR SSIM':>14}{'ours':>10}")
            for name in names:
                c = ours["clips"][name]
                p, s = theirs[name]
                print(f"  {name:<10}{p:>14.6f}{c[f'psnr_{space}']:>12.6f}{s:>14.6f}{c[f'ssim_{space}']:>10.6f}")
            mp, ms = (float(np.mean([theirs[n][i] for n in names])) for i in (0, 1))
            print(f"  {'mean':<10}{mp:>14.6f}{ours['psnr']:>12.6f}{ms:>14.6f}{ours['ssim']:>10.6f}")
            print(f"  |diff| PSNR {abs(mp - ours['psnr']):.2e} dB, SSIM {abs(ms - ours['ssim']):.2e}")
            print(f"  protocol printed by vsr-eval: {ours['protocol']}")


if __name__ == "__main__":
    main()
