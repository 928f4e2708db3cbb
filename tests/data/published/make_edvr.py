"""Reference outputs of BasicSR 1.4.2's `EDVR` for tests/test_published_edvr.py.

Run in the venv with the real torchvision (its compiled ``deform_conv2d``, which BasicSR's
``DCNv2Pack`` calls), without the refstub:

    /tmp/tvenv/bin/python tests/data/published/make_edvr.py

Two narrow EDVRs (num_feat 16, deformable_groups 2, one extraction and one reconstruction
block; upconv2, conv_hr and conv_last have fixed widths) with weights built by NumPy from
a seed (`seeded_state_dict`; the parity test imports this file, torch is imported only in
`main`, and rebuilds them):

* ``tsa``: num_frame 5 with TSA, windows by ``reflection_circle`` (REDS's protocol);
* ``predeblur``: num_frame 3, the 1×1 fusion instead of TSA, the pre-deblurring module,
  windows by ``replicate`` (Vimeo-90K's protocol).

The rows of every DCN's ``conv_offset`` that make offsets are scaled (×`OFFSET_GAIN`,
their biases ±`OFFSET_BIAS`) so that the offsets are a few pixels (the script prints
their mean |offset| per DCN): the sampling really moves, and leaves the frame at times.

Input: one clip of 6 frames of 20×20 (8-bit, /255 in float32 on both sides), each frame
the previous one moved by a pixel plus noise. For every frame i the authors' network runs
on the window BasicSR's ``generate_frame_indices(i, 6, num_frame, padding)`` gives; the npz
holds every third row and column of each ×4 output (0, 3, …, 78: all four pixel-shuffle
phases) and the float64 mean per frame and channel. Also the parameter counts of the
published sizes (M: num_feat 64, 10 reconstruction blocks; L: 128, 40; with and without
TSA / predeblur), and the window indices used.

``make_edvr.py --full_width OUT.npz`` writes the authors' whole output at EDVR_M's size
(num_feat 64, 8 offset groups, 5 + 10 blocks) on the same clip for the slow test.
"""

from __future__ import annotations

import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).parent
SEED = 0
T, H, W = 6, 20, 20
STRIDE = 3  # of the stored output rows / columns
OFFSET_GAIN = 8.0
OFFSET_BIAS = 2.0
COMMON = {"num_feat": 16, "deformable_groups": 2, "num_extract_block": 1, "num_reconstruct_block": 1}
CONFIGS = {
    "tsa": ({**COMMON, "num_frame": 5, "with_tsa": True, "with_predeblur": False}, "reflection_circle"),
    "predeblur": ({**COMMON, "num_frame": 3, "with_tsa": False, "with_predeblur": True}, "replicate"),
}
PUBLISHED = {  # name -> EDVR kwargs of BasicSR's options/test/EDVR/*.yml
    "M": {"num_feat": 64, "num_frame": 5, "num_reconstruct_block": 10, "with_tsa": True},
    "M_woTSA": {"num_feat": 64, "num_frame": 5, "num_reconstruct_block": 10, "with_tsa": False},
    "L": {"num_feat": 128, "num_frame": 5, "num_reconstruct_block": 40, "with_tsa": True},
    "L_vimeo": {"num_feat": 128, "num_frame": 7, "num_reconstruct_block": 40, "with_tsa": True},
    "L_blur": {"num_feat": 128, "num_frame": 5, "num_reconstruct_block": 40, "with_tsa": True, "with_predeblur": True},
}


def _dcn(name: str, nf: int, dg: int):
    return [(f"{name}.conv_offset", (3 * dg * 9, nf, 3)), (name, (nf, nf, 3))]


def _blocks(prefix: str, n: int, nf: int):
    return [(f"{prefix}.{i}.conv{j}", (nf, nf, 3)) for i in range(n) for j in (1, 2)]


def conv_shapes(
    num_feat: int = 64,
    deformable_groups: int = 8,
    num_extract_block: int = 5,
    num_reconstruct_block: int = 10,
    num_frame: int = 5,
    with_tsa: bool = True,
    with_predeblur: bool = False,
) -> list[tuple[str, tuple[int, int, int]]]:
    """(module name, (out, in, k)) of every conv of BasicSR's EDVR (hr_in False; defaults: its own)."""
    nf, dg = num_feat, deformable_groups
    out = []
    if with_predeblur:
        out += [("predeblur.conv_first", (nf, 3, 3))]
        out += [(f"predeblur.stride_conv_l{i}", (nf, nf, 3)) for i in (2, 3)]
        for name in ("resblock_l3", "resblock_l2_1", "resblock_l2_2"):
            out += [(f"predeblur.{name}.conv{j}", (nf, nf, 3)) for j in (1, 2)]
        out += _blocks("predeblur.resblock_l1", 5, nf)
        out += [("conv_1x1", (nf, nf, 1))]
    else:
        out += [("conv_first", (nf, 3, 3))]
    out += _blocks("feature_extraction", num_extract_block, nf)
    out += [(f"conv_l{i}_{j}", (nf, nf, 3)) for i in (2, 3) for j in (1, 2)]
    for i in (3, 2, 1):
        level = f"l{i}"
        out += [(f"pcd_align.offset_conv1.{level}", (nf, 2 * nf, 3))]
        out += [(f"pcd_align.offset_conv2.{level}", (nf, nf if i == 3 else 2 * nf, 3))]
        if i < 3:
            out += [(f"pcd_align.offset_conv3.{level}", (nf, nf, 3))]
        out += _dcn(f"pcd_align.dcn_pack.{level}", nf, dg)
        if i < 3:
            out += [(f"pcd_align.feat_conv.{level}", (nf, 2 * nf, 3))]
    out += [("pcd_align.cas_offset_conv1", (nf, 2 * nf, 3)), ("pcd_align.cas_offset_conv2", (nf, nf, 3))]
    out += _dcn("pcd_align.cas_dcnpack", nf, dg)
    if with_tsa:
        f = "fusion."
        out += [(f + "temporal_attn1", (nf, nf, 3)), (f + "temporal_attn2", (nf, nf, 3))]
        out += [(f + "feat_fusion", (nf, num_frame * nf, 1)), (f + "spatial_attn1", (nf, num_frame * nf, 1))]
        out += [(f + "spatial_attn2", (nf, 2 * nf, 1)), (f + "spatial_attn3", (nf, nf, 3))]
        out += [(f + "spatial_attn4", (nf, nf, 1)), (f + "spatial_attn5", (nf, nf, 3))]
        out += [(f + "spatial_attn_l1", (nf, nf, 1)), (f + "spatial_attn_l2", (nf, 2 * nf, 3))]
        out += [(f + "spatial_attn_l3", (nf, nf, 3))]
        out += [(f + "spatial_attn_add1", (nf, nf, 1)), (f + "spatial_attn_add2", (nf, nf, 1))]
    else:
        out += [("fusion", (nf, num_frame * nf, 1))]
    out += _blocks("reconstruction", num_reconstruct_block, nf)
    out += [
        ("upconv1", (4 * nf, nf, 3)),
        ("upconv2", (256, nf, 3)),
        ("conv_hr", (64, 64, 3)),
        ("conv_last", (3, 64, 3)),
    ]
    return out


def seeded_state_dict(seed: int = SEED, **kwargs) -> dict:
    """EDVR's state_dict (float32, torch shapes) from `seed`, NumPy only: every conv in
    `conv_shapes(**kwargs)` order with weights ~ N(0, 1 / fan_in) and biases ~ U(-0.1, 0.1);
    a ``conv_offset``'s offset rows (the first two thirds) ×OFFSET_GAIN, their biases
    ~ U(-OFFSET_BIAS, OFFSET_BIAS)."""
    rng = np.random.default_rng([seed, 7])
    sd = {}
    for name, (cout, cin, k) in conv_shapes(**kwargs):
        weight = rng.standard_normal((cout, cin, k, k)) / np.sqrt(cin * k * k)
        bias = rng.uniform(-0.1, 0.1, cout)
        if name.endswith("conv_offset"):
            rows = 2 * cout // 3
            weight[:rows] *= OFFSET_GAIN
            bias[:rows] = rng.uniform(-OFFSET_BIAS, OFFSET_BIAS, rows)
        sd[f"{name}.weight"] = weight.astype(np.float32)
        sd[f"{name}.bias"] = bias.astype(np.float32)
    return sd


def checksums(sd: dict[str, np.ndarray]) -> np.ndarray:
    """Float64 sums of |tensor| per key, in `sd`'s order."""
    return np.asarray([np.abs(v.astype(np.float64)).sum() for v in sd.values()])


def clip(rng) -> np.ndarray:
    """(1, T, H, W, 3) uint8: smooth random frames, each moved by (1, 1) px from the last, plus noise."""
    pad = T + 4
    coarse = rng.uniform(0, 255, (1, (H + pad) // 4 + 2, (W + pad) // 4 + 2, 3))
    big = np.repeat(np.repeat(coarse, 4, axis=1), 4, axis=2)
    k = np.ones(5) / 5
    big = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 1, big)
    big = np.apply_along_axis(lambda r: np.convolve(r, k, "same"), 2, big)
    frames = [big[:, 2 + t : 2 + t + H, 2 + t : 2 + t + W] + rng.normal(0, 3, (1, H, W, 3)) for t in range(T)]
    return np.clip(np.rint(np.stack(frames, axis=1)), 0, 255).astype(np.uint8)


def reference(kwargs: dict, padding: str, frames: np.ndarray, sd: dict) -> tuple[np.ndarray, np.ndarray, dict]:
    """The authors' EDVR (`kwargs`, weights `sd`) on every frame's window of `frames` (1, T, H, W, 3)
    uint8: (output (1, T, 4H, 4W, 3) float32, window indices (T, num_frame), mean |offset| per DCN)."""
    import torch
    from basicsr.archs.arch_util import DCNv2Pack
    from basicsr.archs.edvr_arch import EDVR
    from basicsr.data.data_util import generate_frame_indices

    net = EDVR(**kwargs).eval()
    want = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    assert want == {k: v.shape for k, v in sd.items()}, "conv_shapes differs from BasicSR's EDVR"
    net.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    offsets: dict[str, list[float]] = {}

    def hook(name):
        def record(module, inputs, output):
            rows = 2 * output.shape[1] // 3
            offsets.setdefault(name, []).append(float(output[:, :rows].abs().mean()))

        return record

    for name, module in net.named_modules():
        if isinstance(module, DCNv2Pack):
            module.conv_offset.register_forward_hook(hook(name))
    t = frames.shape[1]
    x = torch.from_numpy(frames.astype(np.float32) / np.float32(255)).permute(0, 1, 4, 2, 3)
    index = np.array([generate_frame_indices(i, t, kwargs["num_frame"], padding) for i in range(t)])
    with torch.no_grad():
        sr = torch.cat([net(x[:, list(row)]) for row in index]).permute(0, 2, 3, 1).numpy()[None]
    return sr.astype(np.float32), index.astype(np.int32), {k: round(float(np.mean(v)), 2) for k, v in offsets.items()}


def full_width(path: str) -> None:
    """EDVR_M's size (`PUBLISHED["M"]`, reflection_circle) on `seeded_state_dict` weights and
    this script's clip: the whole output into `path` (for the slow test that runs this script)."""
    kwargs = PUBLISHED["M"]
    frames = clip(np.random.default_rng(3))
    sr, index, offsets = reference(kwargs, "reflection_circle", frames, seeded_state_dict(**kwargs))
    print(f"M: output {sr.shape}, std {sr.std():.3f}; mean |offset| per DCN: {offsets}")
    np.savez(path, frames=frames, output=sr, index=index)


def main() -> None:
    import torch
    from basicsr.archs.edvr_arch import EDVR

    torch.manual_seed(SEED)
    frames = clip(np.random.default_rng(3))
    out = {"frames": frames}
    for key, (kwargs, padding) in CONFIGS.items():
        sd = seeded_state_dict(**kwargs)
        sr, index, offsets = reference(kwargs, padding, frames, sd)
        print(f"{key}: output {sr.shape}, range [{sr.min():.3f}, {sr.max():.3f}], std {sr.std():.3f}")
        print("  mean |offset| per DCN:", offsets)
        out[f"{key}_weight_checksums"] = checksums(sd)
        out[f"{key}_param_count"] = sum(p.numel() for p in EDVR(**kwargs).parameters())
        out[f"{key}_index"] = index
        out[f"{key}_output_strided"] = sr[:, :, ::STRIDE, ::STRIDE]
        out[f"{key}_output_mean"] = sr.astype(np.float64).mean(axis=(2, 3))
    for name, kwargs in PUBLISHED.items():
        out[f"param_count_{name}"] = sum(p.numel() for p in EDVR(**kwargs).parameters())
        print(f"param count {name}: {out[f'param_count_{name}']}")
    path = HERE / "edvr.npz"
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--full_width":
        full_width(sys.argv[2])
    else:
        main()
