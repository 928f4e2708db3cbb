"""Reference outputs of BasicSR 1.4.2's `IconVSR` for tests/test_published_iconvsr.py.

Run with the real ``torchvision.ops.deform_conv2d`` (the venv of issue 20, no refstub):

    /tmp/tvenv/bin/python tests/data/published/make_iconvsr.py

Two narrow IconVSRs (num_feat 16, num_block 1; EDVRFeatureExtractor's deformable_groups=8
is fixed in BasicSR, so num_feat must be a multiple of 8; SpyNet, upconv2, conv_hr and
conv_last have fixed widths) with weights built by NumPy from a seed, as make_basicvsr.py
does (the SpyNet part is make_spynet's recipe under ``spynet.``): the parity test imports
this file (torch is imported only in `main`) and rebuilds them.

* ``tp2``: temporal_padding 2 (the REDS model's), a clip of 7 frames of 36×36: keyframes
  0, 5 and the last frame 6 (appended), the EDVR windows padded by frames [4, 3] / [-4, -5];
* ``tp3``: temporal_padding 3 (the Vimeo-90K models'), 7 frames of 34×37: the spatial
  reflect padding to 36×40 and the crop, the windows padded by [6, 5, 4] / [-5, -6, -7].

Every DCN's ``conv_offset`` weights are scaled by OFFSET_GAIN so that the offsets are a few
pixels (the script prints their mean |offset| per DCN; some samples leave the image).
Frames are 8-bit (scaled by 1/255 in float32 on both sides), each the previous one moved by
a pixel plus noise (make_basicvsr's `clip`). The ×4 outputs are too big to keep whole: the
npz holds every STRIDE-th row and column (STRIDE coprime to 4: all pixel-shuffle phases)
and, of the whole output, the float64 mean per frame and channel.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).parent
SEED = 0
NUM_FEAT = 16
NUM_BLOCK = 1
DEFORM_GROUPS = 8  # EDVRFeatureExtractor's PCDAlignment(deformable_groups=8), fixed by BasicSR
OFFSET_GAIN = 12.0  # conv_offset weights × this: offsets of a few pixels
FULL_RESIDUAL_GAIN = 0.1  # the published width's trunk blocks (--full)
# name: (temporal_padding, (N, T, H, W), output stride)
CASES = {"tp2": (2, (1, 7, 36, 36), 3), "tp3": (3, (1, 7, 34, 37), 7)}


def _sibling(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_spynet = _sibling("make_spynet")
make_basicvsr = _sibling("make_basicvsr")


def conv_shapes(
    num_feat: int = NUM_FEAT, num_block: int = NUM_BLOCK, temporal_padding: int = 2
) -> list[tuple[str, tuple[int, int, int]]]:
    """(module name, (out, in, k)) of every conv outside SpyNet (a DCN's own weight and its
    ``conv_offset`` each count as one), in the authors' order."""
    nf, frames = num_feat, 2 * temporal_padding + 1
    e = "edvr."
    out = [(e + "conv_first", (nf, 3, 3))]
    out += [(f"{e}feature_extraction.{i}.conv{j}", (nf, nf, 3)) for i in range(5) for j in (1, 2)]
    out += [(e + n, (nf, nf, 3)) for n in ("conv_l2_1", "conv_l2_2", "conv_l3_1", "conv_l3_2")]
    p = e + "pcd_align."
    out += [(f"{p}offset_conv1.l{i}", (nf, 2 * nf, 3)) for i in (3, 2, 1)]
    out += [(f"{p}offset_conv2.l{i}", (nf, nf if i == 3 else 2 * nf, 3)) for i in (3, 2, 1)]
    out += [(f"{p}offset_conv3.l{i}", (nf, nf, 3)) for i in (2, 1)]
    for i in (3, 2, 1):
        out += [(f"{p}dcn_pack.l{i}", (nf, nf, 3)), (f"{p}dcn_pack.l{i}.conv_offset", (27 * DEFORM_GROUPS, nf, 3))]
    out += [(f"{p}feat_conv.l{i}", (nf, 2 * nf, 3)) for i in (2, 1)]
    out += [(p + "cas_offset_conv1", (nf, 2 * nf, 3)), (p + "cas_offset_conv2", (nf, nf, 3))]
    out += [(p + "cas_dcnpack", (nf, nf, 3)), (p + "cas_dcnpack.conv_offset", (27 * DEFORM_GROUPS, nf, 3))]
    f = e + "fusion."
    out += [
        (f + "temporal_attn1", (nf, nf, 3)),
        (f + "temporal_attn2", (nf, nf, 3)),
        (f + "feat_fusion", (nf, frames * nf, 1)),
        (f + "spatial_attn1", (nf, frames * nf, 1)),
        (f + "spatial_attn2", (nf, 2 * nf, 1)),
        (f + "spatial_attn3", (nf, nf, 3)),
        (f + "spatial_attn4", (nf, nf, 1)),
        (f + "spatial_attn5", (nf, nf, 3)),
        (f + "spatial_attn_l1", (nf, nf, 1)),
        (f + "spatial_attn_l2", (nf, 2 * nf, 3)),
        (f + "spatial_attn_l3", (nf, nf, 3)),
        (f + "spatial_attn_add1", (nf, nf, 1)),
        (f + "spatial_attn_add2", (nf, nf, 1)),
    ]
    for branch, cin in (("backward", nf + 3), ("forward", 2 * nf + 3)):
        out += [(f"{branch}_fusion", (nf, 2 * nf, 3)), (f"{branch}_trunk.main.0", (nf, cin, 3))]
        for i in range(num_block):
            out += [(f"{branch}_trunk.main.2.{i}.conv{j}", (nf, nf, 3)) for j in (1, 2)]
    out += [
        ("upconv1", (4 * nf, nf, 3)),
        ("upconv2", (256, nf, 3)),
        ("conv_hr", (64, 64, 3)),
        ("conv_last", (3, 64, 3)),
    ]
    return out


def seeded_state_dict(
    seed: int = SEED,
    num_feat: int = NUM_FEAT,
    num_block: int = NUM_BLOCK,
    temporal_padding: int = 2,
    residual_gain: float = 1.0,
) -> dict:
    """IconVSR's state_dict (float32, torch shapes) from `seed`, NumPy only: SpyNet by
    make_spynet's recipe (same seed) under ``spynet.``, then every other conv in
    `conv_shapes` order with weights ~ N(0, 1 / fan_in) (× OFFSET_GAIN for a ``conv_offset``,
    × `residual_gain` for the second conv of a propagation trunk's residual block: 30 blocks
    at gain 1 blow the features up) and biases ~ U(-0.1, 0.1)."""
    sd = make_spynet.seeded_state_dict(seed, prefix="spynet.")
    rng = np.random.default_rng([seed, 1, temporal_padding])
    for name, (cout, cin, k) in conv_shapes(num_feat, num_block, temporal_padding):
        gain = OFFSET_GAIN if name.endswith("conv_offset") else 1.0
        gain *= residual_gain if "_trunk.main.2." in name and name.endswith("conv2") else 1.0
        sd[f"{name}.weight"] = (rng.standard_normal((cout, cin, k, k)) * gain / np.sqrt(cin * k * k)).astype(np.float32)
        sd[f"{name}.bias"] = rng.uniform(-0.1, 0.1, cout).astype(np.float32)
    return sd


def clip(rng, n: int, t: int, h: int, w: int) -> np.ndarray:
    """(n, t, h, w, 3) uint8 moving frames: make_basicvsr's `clip` at this size."""
    keep = make_basicvsr.N, make_basicvsr.T, make_basicvsr.H, make_basicvsr.W
    make_basicvsr.N, make_basicvsr.T, make_basicvsr.H, make_basicvsr.W = n, t, h, w
    try:
        return make_basicvsr.clip(rng)
    finally:
        make_basicvsr.N, make_basicvsr.T, make_basicvsr.H, make_basicvsr.W = keep


def run_authors(case: str, num_feat: int = NUM_FEAT, num_block: int = NUM_BLOCK, residual_gain: float = 1.0) -> dict:
    """BasicSR's IconVSR with `seeded_state_dict`'s weights on `case`'s clip: the weights'
    checksums, the parameter count, the frames, the ×4 output and the mean |offset| per DCN."""
    import torch
    from basicsr.archs.arch_util import DCNv2Pack
    from basicsr.archs.basicvsr_arch import IconVSR

    torch.manual_seed(SEED)
    tp, (n, t, h, w), _ = CASES[case]
    sd = seeded_state_dict(num_feat=num_feat, num_block=num_block, temporal_padding=tp, residual_gain=residual_gain)
    net = IconVSR(num_feat=num_feat, num_block=num_block, temporal_padding=tp).eval()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    offsets: dict[str, list[float]] = {}

    def hook(name):
        def record(module, inputs, output):
            o1, o2, _ = torch.chunk(output, 3, dim=1)
            offsets.setdefault(name, []).append(float(torch.cat([o1, o2], 1).abs().mean()))

        return record

    for name, module in net.named_modules():
        if isinstance(module, DCNv2Pack):
            module.conv_offset.register_forward_hook(hook(name))
    frames = clip(np.random.default_rng([2, tp]), n, t, h, w)
    x = torch.from_numpy(frames.astype(np.float32) / np.float32(255)).permute(0, 1, 4, 2, 3)
    with torch.no_grad():
        sr = net(x).permute(0, 1, 3, 4, 2).numpy().astype(np.float32)  # (N, T, 4H, 4W, 3)
    print(f"{case} ({num_feat} ch, {num_block} blocks): output {sr.shape}, range [{sr.min():.3f}, {sr.max():.3f}]")
    for name, v in offsets.items():
        print(f"  {name}: mean |offset| {np.mean(v):.2f} px over {len(v)} calls")
    return {
        "weight_checksums": make_spynet.checksums(sd),
        "param_count": sum(p.numel() for p in net.parameters()),
        "frames": frames,
        "output": sr,
        "offset_absmean": np.asarray([np.mean(v) for v in offsets.values()]),
    }


def main(argv: list[str]) -> None:
    """Writes iconvsr.npz; with ``--full PATH [CASE …]``, instead the whole outputs of the
    published width (num_feat 64, num_block 30) on the cases' clips (default: both) to PATH
    (for test_published_iconvsr's slow test; not kept)."""
    if argv[:1] == ["--full"]:
        out = {}
        for case in argv[2:] or list(CASES):
            for key, value in run_authors(case, 64, 30, FULL_RESIDUAL_GAIN).items():
                out[f"{case}_{key}"] = value
        np.savez(argv[1], **out)
        print(f"wrote {argv[1]}")
        return
    from basicsr.archs.basicvsr_arch import IconVSR

    out = {
        # the published REDS model (temporal_padding 2) and Vimeo-90K models (3): 64 ch, 30 blocks
        "param_count_64_30_tp2": sum(p.numel() for p in IconVSR(64, 30, temporal_padding=2).parameters()),
        "param_count_64_30_tp3": sum(p.numel() for p in IconVSR(64, 30, temporal_padding=3).parameters()),
    }
    for case, (_, _, stride) in CASES.items():
        ref = run_authors(case)
        sr = ref.pop("output")
        ref["output_strided"] = sr[:, :, ::stride, ::stride]
        ref["output_mean"] = sr.astype(np.float64).mean(axis=(2, 3))
        out.update({f"{case}_{key}": value for key, value in ref.items()})
    path = HERE / "iconvsr.npz"
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main(sys.argv[1:])
