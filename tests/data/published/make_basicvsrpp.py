"""Reference outputs of MMagic 1.2.0's `BasicVSRPlusPlusNet` for tests/test_published_basicvsrpp.py.

Run in the torchvision venv (real ``torchvision.ops.deform_conv2d``; mmagic 1.2.0, mmengine,
mmcv-lite 2.1.0), without the refstub, with Python's asserts off:

    /tmp/tvenv/bin/python -O tests/data/published/make_basicvsrpp.py

``-O``: BasicVSRPlusPlusNet.forward asserts LR frames of at least 64×64 (a guard of its
SPyNet use, nothing computed); the clips here are 36×36 so the test stays cheap (SPyNet
works on them: it resizes to multiples of 32). Everything after the guard is the authors'
code as it is.

The weights are built by NumPy from a seed, in MMagic's names (the SPyNet part is
make_realbasicvsr.py's MMagic SPyNet, i.e. make_spynet.py's recipe; the other convs ~
N(0, 1/fan_in), biases ~ U(-0.1, 0.1), also each ``conv_offset.6``, the offsets' and masks'
conv that MMagic zero-initialises: the offset residues ``10·tanh(o)`` come out 2.1 px on
average (0.7-3.2 px per call; printed), around flows of a pixel or two), so the test
rebuilds them instead of storing them (their checksums are stored).

mmcv.ops: mmcv-lite has no compiled ops, and ``basicvsr_plusplus_net.py`` imports
``ModulatedDeformConv2d`` / ``modulated_deform_conv2d`` from ``mmcv.ops``. `_mmcv_ops` puts
a stand-in module there before MMagic's file is loaded: its ``ModulatedDeformConv2d`` has
mmcv's constructor (in_channels, out_channels, kernel_size, stride, padding, dilation,
groups, deform_groups, bias) and parameters (``weight`` (out, in/groups, kh, kw), ``bias``),
as mmcv-lite 2.1.0's own Python class (``mmcv/ops/modulated_deform_conv.py``, installed in
the venv), and ``modulated_deform_conv2d(x, offset, mask, weight, bias, stride, padding,
dilation, groups, deform_groups)`` is ``torchvision.ops.deform_conv2d(x, offset, weight,
bias, stride, padding, dilation, mask)``. Both compute the same DCNv2: mmcv's kernel
(open-mmlab/mmcv ``mmcv/ops/csrc/common/cuda/modulated_deform_conv_cuda_kernel.cuh``,
``modulated_deformable_im2col_gpu_kernel``, and its CPU twin) reads the offsets per
(batch, deform group) block of 2·kh·kw channels, tap ``i·kw + j`` at channels 2·tap (dy)
and 2·tap + 1 (dx), the mask per (group, tap), samples at ``(h_in + i·dil + dy, w_in +
j·dil + dx)`` bilinearly with zero outside (0 when the point is at -1 or beyond, per corner
otherwise), multiplies by the mask, and the weight's grouped matmul plus bias follows:
torchvision's ``deform_conv2d`` (ported from the same DCNv2 code) has this layout and
sampling; it takes the groups and deform groups from the weight's and offset's shapes, which
are those mmcv is given. The stand-in's ``init_weights`` is mmcv's (it does not matter:
every weight is loaded, strictly).

basicvsrpp.npz:

* ``frames`` (2, 6, 36, 36, 3) uint8: clip 0 moves a pixel per frame; clip 1 is three
  frames and their mirror image (frame i = frame 5-i), so MMagic's
  ``check_if_mirror_extended`` takes its path (forward flows = backward flows, flipped);
  each clip is run on its own (MMagic checks the whole batch);
* ``output_strided`` (2, 6, 21, 21, 3): the ×4 outputs at every `STRIDE`-th row and column
  (edges and all pixel-shuffle phases), ``output_mean`` their float64 means per frame and
  channel, ``mirror`` MMagic's ``is_mirror_extended`` per clip;
* ``checksums`` of the weights; ``param_count`` (this narrow net) and ``param_count_published``
  (mid_channels 64, num_blocks 7);
* ``is_low_res_input=False`` (same-size output; MMagic's NTIRE 2021 decompression models,
  c128n25): ``same_frames`` (1, 4, 36, 36, 3) uint8 (the flows at 9×9, after torch's bicubic
  ×1/4), ``same_output`` the whole output, ``same_checksums`` of its weights (seed + 1, two
  stride-2 convs ``feat_extract.{0,2}`` in front), ``same_param_count_published`` (128, 25).

``--full OUT.npz`` (used by the slow test where this venv exists; no ``-O`` needed): the
published width (mid_channels 64, num_blocks 7) with the same recipe's weights on one
5-frame 64×64 clip, its frames and whole ×4 output written to OUT.npz (4 MB; not stored).

MMagic is imported module by module as in make_realbasicvsr.py (`_import_mmagic` there),
plus ``basicvsr_plusplus_net.py``.
"""

from __future__ import annotations

import importlib.util
import pathlib
import sys

import numpy as np

HERE = pathlib.Path(__file__).parent
SEED = 0
MID = 16  # mid_channels (2·MID is split in 16 deform groups)
BLOCKS = 1  # num_blocks
STRIDE = 7
SHAPE = (6, 36, 36)  # T, h, w
DECOMPRESS_SHAPE = (4, 36, 36)  # T, h, w of the is_low_res_input=False case (flows at 9x9)
FULL = {"mid": 64, "blocks": 7, "res_scale": 0.2, "shape": (1, 5, 64, 64)}  # --full: the published width
BRANCHES = ("backward_1", "forward_1", "backward_2", "forward_2")


def _sibling(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_realbasicvsr = _sibling("make_realbasicvsr")
make_spynet = make_realbasicvsr.make_spynet


def _blocks(name: str, cin: int, mid: int, n: int):
    """ResidualBlocksWithInputConv(cin, mid, n)'s convs."""
    out = [(f"{name}.main.0", (mid, cin, 3))]
    for i in range(n):
        out += [(f"{name}.main.2.{i}.conv{j}", (mid, mid, 3)) for j in (1, 2)]
    return out


def convs(mid: int = MID, blocks: int = BLOCKS, low_res: bool = True):
    """(module, (out, in, k)) of BasicVSRPlusPlusNet outside SPyNet, in its order; the
    deformable convs are the ``deform_align.<branch>`` entries themselves. `low_res`:
    ``is_low_res_input`` (else two stride-2 convs ``feat_extract.{0,2}`` come first)."""
    if low_res:
        out = _blocks("feat_extract", 3, mid, 5)
    else:
        out = [("feat_extract.0", (mid, 3, 3)), ("feat_extract.2", (mid, mid, 3))]
        out += _blocks("feat_extract.4", mid, mid, 5)
    for b in BRANCHES:
        out.append((f"deform_align.{b}", (mid, 2 * mid, 3)))
        out.append((f"deform_align.{b}.conv_offset.0", (mid, 3 * mid + 4, 3)))
        out += [(f"deform_align.{b}.conv_offset.{j}", (mid, mid, 3)) for j in (2, 4)]
        out.append((f"deform_align.{b}.conv_offset.6", (27 * 16, mid, 3)))
    for i, b in enumerate(BRANCHES):
        out += _blocks(f"backbone.{b}", (2 + i) * mid, mid, blocks)
    out += _blocks("reconstruction", 5 * mid, mid, 5)
    return out + [
        ("upsample1.upsample_conv", (4 * mid, mid, 3)),
        ("upsample2.upsample_conv", (256, mid, 3)),
        ("conv_hr", (64, 64, 3)),
        ("conv_last", (3, 64, 3)),
    ]


def state_dict(
    seed: int = SEED, mid: int = MID, blocks: int = BLOCKS, res_scale: float = 1.0, low_res: bool = True
) -> dict:
    """MMagic BasicVSRPlusPlusNet's state_dict (see the module docstring); `res_scale`
    multiplies the residual blocks' ``conv2`` weights (the published width's 17 blocks
    per path would otherwise grow the features a hundredfold)."""
    sd = make_realbasicvsr.spynet_state_dict(seed, "spynet.")
    rng = np.random.default_rng([seed, 4])
    for name, shape in convs(mid, blocks, low_res):
        scale = res_scale if name.endswith(".conv2") else 1.0
        sd.update(make_realbasicvsr._convs(rng, [(name, shape)], "", scale))
    return sd


def clips(rng) -> np.ndarray:
    """(2, T, h, w, 3) uint8: a moving clip and a mirror-extended one (see the module docstring)."""
    t, h, w = SHAPE
    moving = make_realbasicvsr.frames(rng, 1, t, h, w)
    half = make_realbasicvsr.frames(rng, 1, t // 2, h, w)
    return np.concatenate([moving, np.concatenate([half, half[:, ::-1]], axis=1)])


def _mmcv_ops():
    """The ``mmcv.ops`` stand-in (see the module docstring)."""
    import math
    import types

    import torch
    import torch.nn as nn
    from torch.nn.modules.utils import _pair
    from torchvision.ops import deform_conv2d

    def modulated_deform_conv2d(x, offset, mask, weight, bias, stride, padding, dilation, groups, deform_groups):
        if weight.shape[1] * groups != x.shape[1] or offset.shape[1] != 2 * deform_groups * weight[0, 0].numel():
            raise ValueError("groups / deform_groups do not fit the weight and offset shapes")
        return deform_conv2d(x, offset, weight, bias, stride=stride, padding=padding, dilation=dilation, mask=mask)

    class ModulatedDeformConv2d(nn.Module):
        def __init__(
            self,
            in_channels,
            out_channels,
            kernel_size,
            stride=1,
            padding=0,
            dilation=1,
            groups=1,
            deform_groups=1,
            bias=True,
        ):
            super().__init__()
            self.in_channels, self.out_channels = in_channels, out_channels
            self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
            self.padding, self.dilation = _pair(padding), _pair(dilation)
            self.groups, self.deform_groups = groups, deform_groups
            self.weight = nn.Parameter(torch.empty(out_channels, in_channels // groups, *self.kernel_size))
            self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
            stdv = 1.0 / math.sqrt(in_channels * self.kernel_size[0] * self.kernel_size[1])
            nn.init.uniform_(self.weight, -stdv, stdv)
            if self.bias is not None:
                nn.init.zeros_(self.bias)

        def forward(self, x, offset, mask):
            return modulated_deform_conv2d(
                x, offset, mask, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups,
                self.deform_groups,
            )  # fmt: skip

    ops = types.ModuleType("mmcv.ops")
    ops.ModulatedDeformConv2d = ModulatedDeformConv2d
    ops.modulated_deform_conv2d = modulated_deform_conv2d
    sys.modules["mmcv.ops"] = ops


def _import_mmagic():
    import types

    root = pathlib.Path(importlib.util.find_spec("mmagic").origin).parent
    _mmcv_ops()
    make_realbasicvsr._import_mmagic()
    name = "mmagic.models.editors.basicvsr_plusplus_net"
    module = types.ModuleType(name)
    module.__path__ = [str(root / "models" / "editors" / "basicvsr_plusplus_net")]
    sys.modules[name] = module
    return importlib.import_module(f"{name}.basicvsr_plusplus_net").BasicVSRPlusPlusNet


def full_width(path: str) -> None:
    """--full (see the module docstring)."""
    import torch

    BasicVSRPlusPlusNet = _import_mmagic()
    sd = state_dict(SEED, FULL["mid"], FULL["blocks"], FULL["res_scale"])
    net = BasicVSRPlusPlusNet(FULL["mid"], FULL["blocks"]).eval()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    frames = make_realbasicvsr.frames(np.random.default_rng(6), *FULL["shape"])
    with torch.no_grad():
        sr = make_realbasicvsr._numpy_clip(net(make_realbasicvsr._torch_clip(frames)))
    np.savez(path, frames=frames, output=sr, checksums=make_spynet.checksums(sd))
    print(f"wrote {path}: output {sr.shape}, range [{sr.min():.3f}, {sr.max():.3f}]")


def main() -> None:
    import torch

    if len(sys.argv) == 3 and sys.argv[1] == "--full":
        return full_width(sys.argv[2])
    BasicVSRPlusPlusNet = _import_mmagic()
    torch.manual_seed(SEED)
    sd = state_dict()
    net = BasicVSRPlusPlusNet(MID, BLOCKS).eval()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in sd.items()}, strict=True)
    residues = []
    for b in BRANCHES:  # the offsets' residues (after the tanh clamp), before the flows are added
        net.deform_align[b].conv_offset.register_forward_hook(
            lambda m, i, o: residues.append(float((10 * torch.tanh(o[:, : 2 * 9 * 16])).abs().mean()))
        )
    frames = clips(np.random.default_rng(5))
    outs, mirror = [], []
    for clip in frames:
        with torch.no_grad():
            sr = make_realbasicvsr._numpy_clip(net(make_realbasicvsr._torch_clip(clip[None])))
        outs.append(sr[0])
        mirror.append(bool(net.is_mirror_extended))
    assert mirror == [False, True], mirror
    sr = np.stack(outs)
    lo, hi = min(residues), max(residues)
    print(f"offset residues: mean |10 tanh(o)| {np.mean(residues):.2f} px (per call {lo:.2f}-{hi:.2f})")
    print(f"output {sr.shape}, range [{sr.min():.3f}, {sr.max():.3f}], std {sr.std():.3f}")
    out = {
        "frames": frames,
        "output_strided": sr[:, :, ::STRIDE, ::STRIDE],
        "output_mean": sr.astype(np.float64).mean(axis=(2, 3)),
        "mirror": np.asarray(mirror),
        "checksums": make_spynet.checksums(sd),
        "param_count": sum(p.numel() for p in net.parameters()),
        "param_count_published": sum(p.numel() for p in BasicVSRPlusPlusNet(64, 7).parameters()),
    }
    # is_low_res_input=False (same-size output, MMagic's NTIRE 2021 decompression models)
    dsd = state_dict(SEED + 1, low_res=False)
    net = BasicVSRPlusPlusNet(MID, BLOCKS, is_low_res_input=False).eval()
    net.load_state_dict({k: torch.from_numpy(v) for k, v in dsd.items()}, strict=True)
    same = make_realbasicvsr.frames(np.random.default_rng(9), 1, *DECOMPRESS_SHAPE)
    with torch.no_grad():
        sr = make_realbasicvsr._numpy_clip(net(make_realbasicvsr._torch_clip(same)))
    print(f"is_low_res_input=False: output {sr.shape}, range [{sr.min():.3f}, {sr.max():.3f}]")
    out.update(
        same_frames=same,
        same_output=sr,
        same_checksums=make_spynet.checksums(dsd),
        same_param_count_published=sum(
            p.numel() for p in BasicVSRPlusPlusNet(128, 25, is_low_res_input=False).parameters()
        ),
    )
    path = HERE / "basicvsrpp.npz"
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
