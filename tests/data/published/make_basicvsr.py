"""Reference outputs of BasicSR 1.4.2's `BasicVSR` for tests/test_published_basicvsr.py.

Run in the authors' venv (see README.md):

    PYTHONPATH=tests/data/published/refstub /tmp/refvenv/bin/python tests/data/published/make_basicvsr.py

A narrow BasicVSR (num_feat 8, num_block 2; its SpyNet, upconv2, conv_hr and conv_last
have fixed widths, so ~1.5 M parameters in all) with weights built by NumPy from a seed,
as make_spynet.py does (the SpyNet part is make_spynet's recipe under ``spynet.``): the
parity test imports this file (torch is imported only in `main`) and rebuilds them.

Input: a batch of 2 clips of 5 frames of 34×34 (8-bit, scaled by 1/255 in float32 on
both sides; SpyNet needs more than 32 px), each frame the previous one moved by a pixel
plus noise. The ×4 output (2, 5, 136, 136, 3) is too big to keep whole: the npz holds
every third row and column of it (0, 3, …, 135: edges and all four pixel-shuffle phases
in both directions) and, of the whole output, the float64 mean per frame and channel.
"""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np

HERE = pathlib.Path(__file__).parent
SEED = 0
NUM_FEAT = 8
NUM_BLOCK = 2
N, T, H, W = 2, 5, 34, 34
STRIDE = 3  # of the stored output rows / columns


def _sibling(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_spynet = _sibling("make_spynet")


def conv_shapes(num_feat: int = NUM_FEAT, num_block: int = NUM_BLOCK) -> list[tuple[str, tuple[int, int, int]]]:
    """(module name, (out, in, k)) of every conv outside SpyNet, in the authors' order."""
    out = []
    for trunk in ("backward_trunk", "forward_trunk"):
        out.append((f"{trunk}.main.0", (num_feat, num_feat + 3, 3)))
        for i in range(num_block):
            out += [(f"{trunk}.main.2.{i}.conv{j}", (num_feat, num_feat, 3)) for j in (1, 2)]
    out += [
        ("fusion", (num_feat, 2 * num_feat, 1)),
        ("upconv1", (4 * num_feat, num_feat, 3)),
        ("upconv2", (256, num_feat, 3)),
        ("conv_hr", (64, 64, 3)),
        ("conv_last", (3, 64, 3)),
    ]
    return out


def seeded_state_dict(seed: int = SEED, num_feat: int = NUM_FEAT, num_block: int = NUM_BLOCK) -> dict:
    """BasicVSR's state_dict (float32, torch shapes) from `seed`, NumPy only: SpyNet by
    make_spynet's recipe (same seed) under ``spynet.``, then every other conv in
    `conv_shapes` order with weights ~ N(0, 1 / fan_in) and biases ~ U(-0.1, 0.1)."""
    sd = make_spynet.seeded_state_dict(seed, prefix="spynet.")
    rng = np.random.default_rng([seed, 1])
    for name, (cout, cin, k) in conv_shapes(num_feat, num_block):
        sd[f"{name}.weight"] = (rng.standard_normal((cout, cin, k, k)) / np.sqrt(cin * k * k)).astype(np.float32)
        sd[f"{name}.bias"] = rng.uniform(-0.1, 0.1, cout).astype(np.float32)
    return sd


def clip(rng) -> np.ndarray:
    """(N, T, H, W, 3) uint8: smooth random frames, each moved by (1, 1) px from the last, plus noise."""
    pad = T + 4
    coarse = rng.uniform(0, 255, (N, (H + pad) // 4 + 2, (W + pad) // 4 + 2, 3))
    big = np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2)
    k = np.ones(5) / 5
    big = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 1, big)
    big = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 2, big)
    frames = [big[:, 2 + t : 2 + t + H, 2 + t : 2 + t + W] + rng.normal(0, 3, (N, H, W, 3)) for t in range(T)]
    return np.clip(np.rint(np.stack(frames, axis=1)), 0, 255).astype(np.uint8)


def main() -> None:
    import torch
    from basicsr.archs.basicvsr_arch import BasicVSR

    torch.manual_seed(SEED)
    sd = seeded_state_dict()
    net = BasicVSR(num_feat=NUM_FEAT, num_block=NUM_BLOCK).eval()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    frames = clip(np.random.default_rng(2))
    x = torch.from_numpy(frames.astype(np.float32) / np.float32(255)).permute(0, 1, 4, 2, 3)
    with torch.no_grad():
        sr = net(x).permute(0, 1, 3, 4, 2).numpy().astype(np.float32)  # (N, T, 4H, 4W, 3)
    print(f"output {sr.shape}, range [{sr.min():.3f}, {sr.max():.3f}], std {sr.std():.3f}")
    out = {
        "weight_checksums": make_spynet.checksums(sd),
        "param_count": sum(p.numel() for p in net.parameters()),
        # the published REDS4 / Vimeo-90K models: num_feat 64, num_block 30
        "param_count_64_30": sum(p.numel() for p in BasicVSR(num_feat=64, num_block=30).parameters()),
        "frames": frames,
        "output_strided": sr[:, :, ::STRIDE, ::STRIDE],
        "output_mean": sr.astype(np.float64).mean(axis=(2, 3)),
    }
    path = HERE / "basicvsr.npz"
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
