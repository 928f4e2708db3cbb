"""Reference flows of BasicSR 1.4.2's `SpyNet` for tests/test_published_spynet.py.

Run in the authors' venv (see README.md):

    PYTHONPATH=tests/data/published/refstub /tmp/refvenv/bin/python tests/data/published/make_spynet.py

SpyNet's structure is fixed (six BasicModules of five 7×7 convs, ~1.44 M parameters), so
its state_dict (5.8 MB as float32) is not stored. Instead `seeded_state_dict` builds the
weights with NumPy alone from a seed (`np.random.default_rng`, whose streams are the same
on every platform); this script loads them into the authors' module with
`load_state_dict(strict=True)`, and the parity test imports this file (it imports torch
only inside `main`) and rebuilds the same arrays. The npz holds a per-tensor checksum of
the weights, so a change of the recipe or of NumPy's generator is caught as such rather
than as a parity failure.

Inputs are 8-bit frames (uint8, scaled by 1/255 in float32 on both sides), so the npz
stays small: pairs of 37×50 frames (not a multiple of 32: the resize to 64×64 and the flow
scaling back), 64×64 (no resize) and 33×70 (resized to 64×96, whose coarsest pyramid level
is 2×3: the replicate padding of the upsampled flow), batch 2 each. (The authors' SpyNet
fails for a side of 32 px or less: its coarsest level is then 1 px and the flow it starts
from 0 px.) Frame 2 is frame 1 shifted by a pixel or
two plus noise, so the flows are not those of unrelated images.
"""

from __future__ import annotations

import pathlib

import numpy as np

SEED = 0
# BasicModule's five convs: (index in its Sequential, in channels, out channels), 7×7.
CONVS = ((0, 8, 32), (2, 32, 64), (4, 64, 32), (6, 32, 16), (8, 16, 2))
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)
# (h, w) of the test pairs
SIZES = ((37, 50), (64, 64), (33, 70))


def seeded_state_dict(seed: int = SEED, prefix: str = "") -> dict[str, np.ndarray]:
    """SpyNet's state_dict (keys and torch shapes, float32) from `seed`, NumPy only.

    Weights ~ N(0, (1.2 / sqrt(fan_in))²) (He-like, so activations keep their scale
    through ReLUs and the flows come out a few pixels), biases ~ U(-0.1, 0.1): every
    tensor random, none zero. `prefix` (e.g. "spynet.") is put before every key.
    """
    rng = np.random.default_rng(seed)
    sd: dict[str, np.ndarray] = {}
    for level in range(6):
        for j, cin, cout in CONVS:
            key = f"{prefix}basic_module.{level}.basic_module.{j}"
            w = rng.standard_normal((cout, cin, 7, 7)) * (1.2 / np.sqrt(cin * 49))
            sd[f"{key}.weight"] = w.astype(np.float32)
            sd[f"{key}.bias"] = rng.uniform(-0.1, 0.1, cout).astype(np.float32)
    sd[f"{prefix}mean"] = np.asarray(MEAN, np.float32).reshape(1, 3, 1, 1)
    sd[f"{prefix}std"] = np.asarray(STD, np.float32).reshape(1, 3, 1, 1)
    return sd


def checksums(sd: dict[str, np.ndarray]) -> np.ndarray:
    """Float64 sums of |tensor| per key, in `sd`'s order."""
    return np.asarray([np.abs(v.astype(np.float64)).sum() for v in sd.values()])


def frame_pairs(rng, n: int, h: int, w: int) -> np.ndarray:
    """(2, n, h, w, 3) uint8: smooth random frames and copies moved by (1, 2) px plus noise."""
    coarse = rng.uniform(0, 255, (n, h // 4 + 3, w // 4 + 3, 3))
    big = np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2)
    k = np.ones(5) / 5
    big = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 1, big)
    big = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 2, big)
    f1 = big[:, 4 : 4 + h, 4 : 4 + w]
    f2 = big[:, 3 : 3 + h, 2 : 2 + w] + rng.normal(0, 4, (n, h, w, 3))
    return np.clip(np.rint(np.stack([f1, f2])), 0, 255).astype(np.uint8)


def main() -> None:
    import torch
    from basicsr.archs.spynet_arch import SpyNet

    torch.manual_seed(SEED)
    sd = seeded_state_dict()
    net = SpyNet().eval()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    rng = np.random.default_rng(1)
    out = {"weight_checksums": checksums(sd), "param_count": sum(p.numel() for p in net.parameters())}
    for h, w in SIZES:
        frames = frame_pairs(rng, 2, h, w)
        x = torch.from_numpy(frames.astype(np.float32) / np.float32(255)).permute(0, 1, 4, 2, 3)
        with torch.no_grad():
            flow = net(x[0], x[1])
        out[f"frames_{h}x{w}"] = frames
        out[f"flow_{h}x{w}"] = flow.permute(0, 2, 3, 1).numpy().astype(np.float32)
        f = out[f"flow_{h}x{w}"]
        print(f"{h}x{w}: flow mean {f.mean(axis=(0, 1, 2))}, |flow| max {np.abs(f).max():.3f}")
    path = pathlib.Path(__file__).with_name("spynet.npz")
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
