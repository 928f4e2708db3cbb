"""Reference outputs of MMagic 1.2.0's `RealBasicVSRNet` and `BasicVSRNet` for
tests/test_published_realbasicvsr.py, and a small checkpoint in MMagic's file layout.

Run in the authors' venv (see README.md; mmagic, mmengine and mmcv-lite installed there):

    PYTHONPATH=tests/data/published/refstub /tmp/refvenv/bin/python tests/data/published/make_realbasicvsr.py

The weights are built by NumPy from a seed, in MMagic's names (the SPyNet part is
make_spynet.py's recipe with ConvModule's ``.conv.``), so the test rebuilds them instead
of storing them (their checksums are stored); `checkpoint()` is the state_dict of an MMagic
RealBasicVSR checkpoint: ``generator_ema.*`` (the weights the outputs are made with),
``generator.*`` (the same SPyNet, which RealBasicVSR keeps frozen, and other weights
elsewhere), a ``discriminator.*`` and a ``step_counter``, as in the published files.

realbasicvsr.npz:

* ``rbv_frames`` (2, 3, 11, 13, 3) uint8 (scaled by 1/255 in float32 on both sides; SPyNet
  resizes them to 32×32); ``rbv_thres`` three values of ``dynamic_refine_thres`` (on
  MMagic's 0–255 scale) and ``rbv_passes`` the cleaning passes MMagic ran at each (1, 2, 3);
  ``rbv_cleaned`` the cleaned frames at each (MMagic's ``return_lqs=True``);
* ``rbv_output_strided`` / ``rbv_output_mean``: the ×4 output at the two-pass threshold,
  every third row and column (edges and all pixel-shuffle phases) and its float64 mean per
  frame and channel;
* ``bvsr_frames`` (2, 4, 13, 11, 3): mirror-extended clips (frame i = frame 3-i), so
  MMagic's BasicVSRNet takes its mirror path (forward flows = backward flows, flipped), and
  ``bvsr_output_strided`` / ``bvsr_output_mean`` of an MMagic BasicVSRNet on them;
* weight checksums and the parameter counts of the published sizes.

mmagic_meta.pth: what an MMagic / mmengine checkpoint holds besides the weights (``meta``
with a config text and NumPy scalars, ``message_hub`` with mmengine ``HistoryBuffer`` objects
and NumPy arrays, an optimizer state), with a two-tensor state_dict under ``generator.`` and
``generator_ema.``: for the reader's test (nothing in it may run).

MMagic is imported module by module: its package ``__init__`` files import the whole
library (diffusers, transformers, click, …), so the four files these networks need are
loaded under bare package stand-ins (`_import_mmagic`); ``make_layer`` and
``default_init_weights`` (``mmagic.models.utils.model_utils``, whose imports pull in the
rest) are given as one-line equivalents, and the initialisation does not matter (every
weight is loaded, strictly). ``ConvModule`` is mmcv-lite 2.1.0's own.
"""

from __future__ import annotations

import importlib.util
import pathlib

import numpy as np

HERE = pathlib.Path(__file__).parent
SEED = 0
MID = 8  # mid_channels
PROP_BLOCKS = 2  # num_propagation_blocks (RealBasicVSR) / num_blocks (BasicVSR)
CLEAN_BLOCKS = 2  # num_cleaning_blocks
STRIDE = 3
RBV_SHAPE = (2, 3, 11, 13)  # N, T, h, w
BVSR_SHAPE = (2, 4, 13, 11)


def _sibling(name: str):
    spec = importlib.util.spec_from_file_location(name, HERE / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_spynet = _sibling("make_spynet")


def _convs(rng, shapes, prefix: str, scale: float = 1.0) -> dict[str, np.ndarray]:
    sd = {}
    for name, (cout, cin, k) in shapes:
        w = rng.standard_normal((cout, cin, k, k)) * (scale / np.sqrt(cin * k * k))
        sd[f"{prefix}{name}.weight"] = w.astype(np.float32)
        sd[f"{prefix}{name}.bias"] = rng.uniform(-0.1, 0.1, cout).astype(np.float32)
    return sd


def spynet_state_dict(seed: int = SEED, prefix: str = "") -> dict[str, np.ndarray]:
    """make_spynet's SpyNet in MMagic's names: BasicSR's ``basic_module.L.basic_module.J``
    (J = 0, 2, …, 8: convs between ReLUs) is ConvModule ``basic_module.L.basic_module.{J/2}.conv``."""
    sd = {}
    for key, value in make_spynet.seeded_state_dict(seed, prefix).items():
        if key.endswith(("weight", "bias")):
            head, j, leaf = key.rsplit(".", 2)
            key = f"{head}.{int(j) // 2}.conv.{leaf}"
        sd[key] = value
    return sd


def basicvsr_convs(mid: int = MID, blocks: int = PROP_BLOCKS):
    """(module, (out, in, k)) of MMagic's BasicVSRNet outside SPyNet, in its order."""
    out = []
    for branch in ("backward_resblocks", "forward_resblocks"):
        out.append((f"{branch}.main.0", (mid, mid + 3, 3)))
        for i in range(blocks):
            out += [(f"{branch}.main.2.{i}.conv{j}", (mid, mid, 3)) for j in (1, 2)]
    out += [
        ("fusion", (mid, 2 * mid, 1)),
        ("upsample1.upsample_conv", (4 * mid, mid, 3)),
        ("upsample2.upsample_conv", (256, mid, 3)),
        ("conv_hr", (64, 64, 3)),
        ("conv_last", (3, 64, 3)),
    ]
    return out


def cleaning_convs(mid: int = MID, blocks: int = CLEAN_BLOCKS):
    out = [("image_cleaning.0.main.0", (mid, 3, 3))]
    for i in range(blocks):
        out += [(f"image_cleaning.0.main.2.{i}.conv{j}", (mid, mid, 3)) for j in (1, 2)]
    return out + [("image_cleaning.1", (3, mid, 3))]


def basicvsr_state_dict(seed: int = SEED, mid: int = MID, blocks: int = PROP_BLOCKS, prefix: str = "") -> dict:
    """MMagic BasicVSRNet's state_dict: SPyNet (`spynet_state_dict`) then the other convs,
    weights ~ N(0, 1 / fan_in), biases ~ U(-0.1, 0.1)."""
    sd = spynet_state_dict(seed, prefix + "spynet.")
    sd.update(_convs(np.random.default_rng([seed, 1]), basicvsr_convs(mid, blocks), prefix))
    return sd


def realbasicvsr_state_dict(
    seed: int = SEED, mid: int = MID, prop: int = PROP_BLOCKS, clean: int = CLEAN_BLOCKS, prefix: str = ""
) -> dict:
    """MMagic RealBasicVSRNet's state_dict: the cleaning module (its last conv's weights
    ×0.5, so the residues are a fraction of the frames) then ``basicvsr.*``."""
    rng = np.random.default_rng([seed, 2])
    sd = _convs(rng, cleaning_convs(mid, clean)[:-1], prefix)
    sd.update(_convs(rng, cleaning_convs(mid, clean)[-1:], prefix, scale=0.5))
    sd.update(basicvsr_state_dict(seed, mid, prop, prefix + "basicvsr."))
    return sd


def checkpoint(seed: int = SEED) -> dict[str, np.ndarray]:
    """The state_dict of an MMagic RealBasicVSR checkpoint (see the module docstring)."""
    ema = realbasicvsr_state_dict(seed)
    other = realbasicvsr_state_dict(seed + 1)
    sd = {f"generator_ema.{k}": v for k, v in ema.items()}
    for k, v in ema.items():  # the generator: SPyNet frozen (the same), the rest trained on
        sd[f"generator.{k}"] = v if k.startswith("basicvsr.spynet.") else other[k]
    sd.update(_convs(np.random.default_rng([seed, 3]), [("conv0", (4, 3, 3))], "discriminator."))
    sd["step_counter"] = np.zeros(1, np.float32)
    return sd


def frames(rng, n: int, t: int, h: int, w: int) -> np.ndarray:
    """(n, t, h, w, 3) uint8: smooth random frames moving by a pixel per frame, plus noise."""
    coarse = rng.uniform(0, 255, (n, (h + t) // 3 + 3, (w + t) // 3 + 3, 3))
    big = np.repeat(np.repeat(coarse, 3, axis=1), 3, axis=2)
    out = [big[:, 1 + i : 1 + i + h, 2 + i : 2 + i + w] + rng.normal(0, 4, (n, h, w, 3)) for i in range(t)]
    return np.clip(np.rint(np.stack(out, axis=1)), 0, 255).astype(np.uint8)


def _import_mmagic():
    """RealBasicVSRNet and BasicVSRNet from the installed mmagic, without its package
    ``__init__`` files (see the module docstring)."""
    import sys
    import types

    import torch.nn as nn

    root = pathlib.Path(importlib.util.find_spec("mmagic").origin).parent
    for name in (
        "mmagic",
        "mmagic.models",
        "mmagic.models.archs",
        "mmagic.models.utils",
        "mmagic.models.editors",
        "mmagic.models.editors.basicvsr",
        "mmagic.models.editors.real_basicvsr",
    ):
        module = types.ModuleType(name)
        module.__path__ = [str(root.joinpath(*name.split(".")[1:]))]
        sys.modules[name] = module
    utils = sys.modules["mmagic.models.utils"]
    utils.make_layer = lambda block, num_blocks, **kw: nn.Sequential(*[block(**kw) for _ in range(num_blocks)])
    utils.default_init_weights = lambda module, scale=1: None
    utils.flow_warp = importlib.import_module("mmagic.models.utils.flow_warp").flow_warp
    archs = sys.modules["mmagic.models.archs"]
    archs.ResidualBlockNoBN = importlib.import_module("mmagic.models.archs.sr_backbone").ResidualBlockNoBN
    archs.PixelShufflePack = importlib.import_module("mmagic.models.archs.upsample").PixelShufflePack
    basicvsr = importlib.import_module("mmagic.models.editors.basicvsr.basicvsr_net")
    real = importlib.import_module("mmagic.models.editors.real_basicvsr.real_basicvsr_net")
    return real.RealBasicVSRNet, basicvsr.BasicVSRNet


def _torch_clip(x):
    import torch

    return torch.from_numpy(x.astype(np.float32) / np.float32(255)).permute(0, 1, 4, 2, 3).contiguous()


def _numpy_clip(y):
    return y.permute(0, 1, 3, 4, 2).numpy().astype(np.float32)


def _meta_pth(path: pathlib.Path) -> None:
    """mmagic_meta.pth (see the module docstring), saved as mmengine's CheckpointHook does."""
    import torch
    from mmengine.logging import HistoryBuffer

    loss = HistoryBuffer()
    for v in (0.5, 0.25, 0.125):
        loss.update(v)
    g = torch.Generator().manual_seed(0)
    gen = {}
    for prefix in ("generator.", "generator_ema."):
        gen[prefix + "image_cleaning.1.weight"] = torch.randn(3, 2, 3, 3, generator=g)
        gen[prefix + "image_cleaning.1.bias"] = torch.randn(3, generator=g)
    checkpoint = {
        "meta": {
            "cfg": "model = dict(type='RealBasicVSR')\n",
            "seed": np.int64(2022),
            "epoch": 0,
            "iter": 150000,
            "mmengine_version": "0.10.7",
            "time": "20211104_000000",
            "dataset_meta": None,
            "experiment_name": "realbasicvsr_c64b20-1x30x8_8xb1-lr5e-5-150k_reds",
        },
        "state_dict": gen,
        "message_hub": {
            "log_scalars": {"train/loss": loss},
            "runtime_info": {"iter": 150000, "lr": np.float64(5e-5), "scale": np.arange(3, dtype=np.float32)},
            "resumed_keys": {"iter": True},
        },
        "optimizer": {"generator": {"state": {}, "param_groups": [{"lr": 5e-5, "betas": (0.9, 0.99)}]}},
    }
    torch.save(checkpoint, path)


def main() -> None:
    import torch

    RealBasicVSRNet, BasicVSRNet = _import_mmagic()
    torch.manual_seed(SEED)
    ckpt = checkpoint()
    ema = {k[len("generator_ema.") :]: torch.from_numpy(v) for k, v in ckpt.items() if k.startswith("generator_ema.")}
    out: dict[str, np.ndarray] = {"checkpoint_checksums": make_spynet.checksums(ckpt)}

    # RealBasicVSR: the cleaning loop at three thresholds, the x4 output at the 2-pass one
    def net(thres):
        model = RealBasicVSRNet(MID, PROP_BLOCKS, CLEAN_BLOCKS, dynamic_refine_thres=thres).eval()
        model.load_state_dict(ema, strict=True)
        return model

    rbv = frames(np.random.default_rng(7), *RBV_SHAPE)
    lq = _torch_clip(rbv)
    means, x = [], lq.clone().view(-1, *lq.shape[2:])
    with torch.no_grad():
        cleaner = net(255).image_cleaning
        for _ in range(3):
            residues = cleaner(x)
            x = x + residues
            means.append(float(torch.mean(torch.abs(residues))))
    print("mean |residue| per pass:", means)
    assert means[1] < means[0], "the seeded cleaner does not shrink its residues: pick another seed"
    thresholds = np.asarray([255.0, 255.0 * (means[0] + means[1]) / 2, 0.0])  # 1, 2 and 3 passes
    passes, cleaned = [], []
    for thres in thresholds:
        model = net(float(thres))
        calls: list[int] = []
        model.image_cleaning.register_forward_hook(lambda *_, calls=calls: calls.append(1))
        with torch.no_grad():
            sr, lqs = model(lq.clone(), return_lqs=True)
        passes.append(len(calls))
        cleaned.append(_numpy_clip(lqs))
        if len(calls) == 2:
            rbv_sr = _numpy_clip(sr)
    assert passes == [1, 2, 3], passes
    out.update(
        rbv_frames=rbv,
        rbv_thres=thresholds,
        rbv_passes=np.asarray(passes),
        rbv_cleaned=np.stack(cleaned),
        rbv_output_strided=rbv_sr[:, :, ::STRIDE, ::STRIDE],
        rbv_output_mean=rbv_sr.astype(np.float64).mean(axis=(2, 3)),
        rbv_param_count=sum(p.numel() for p in net(255).parameters()),
        rbv_param_count_published=sum(p.numel() for p in RealBasicVSRNet(64, 20, 20).parameters()),
    )
    print(f"realbasicvsr output {rbv_sr.shape}, range [{rbv_sr.min():.3f}, {rbv_sr.max():.3f}]")

    # BasicVSRNet on mirror-extended clips
    bsd = basicvsr_state_dict()
    out["bvsr_checksums"] = make_spynet.checksums(bsd)
    model = BasicVSRNet(MID, PROP_BLOCKS).eval()
    model.load_state_dict({k: torch.from_numpy(v) for k, v in bsd.items()}, strict=True)
    half = frames(np.random.default_rng(8), BVSR_SHAPE[0], BVSR_SHAPE[1] // 2, *BVSR_SHAPE[2:])
    bvsr = np.concatenate([half, half[:, ::-1]], axis=1)
    with torch.no_grad():
        sr = _numpy_clip(model(_torch_clip(bvsr)))
    assert model.is_mirror_extended
    out.update(
        bvsr_frames=bvsr,
        bvsr_output_strided=sr[:, :, ::STRIDE, ::STRIDE],
        bvsr_output_mean=sr.astype(np.float64).mean(axis=(2, 3)),
        bvsr_param_count_published=sum(p.numel() for p in BasicVSRNet(64, 30).parameters()),
    )
    print(f"basicvsr output {sr.shape}, range [{sr.min():.3f}, {sr.max():.3f}]")

    path = HERE / "realbasicvsr.npz"
    np.savez_compressed(path, **out)
    print(f"wrote {path} ({path.stat().st_size} bytes)")
    _meta_pth(HERE / "mmagic_meta.pth")
    print(f"wrote {HERE / 'mmagic_meta.pth'} ({(HERE / 'mmagic_meta.pth').stat().st_size} bytes)")


if __name__ == "__main__":
    main()
