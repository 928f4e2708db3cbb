"""Writes the .pth fixtures of tests/test_pretrained_pth.py with torch, and the arrays each
should load as (.npz beside it), so the reader (vsr_jax/pretrained/pth.py) is checked
against torch.save itself without torch in the project's venv.

Run in the reference venv (tests/data/published/README.md):
    PYTHONPATH=tests/data/published/refstub /tmp/refvenv/bin/python tests/data/pth/make_pth.py

Files (all tiny):
* basicsr_zip.pth / basicsr_legacy.pth: BasicSR's {"params": OrderedDict} in torch's zip and
  legacy formats: a real nn.Conv2d state dict (with its _metadata), tensors sharing one storage
  (a transposed view, an offset slice, an expanded stride-0 view), float16, bfloat16, float64,
  int64, int32, int8, uint8, uint16, float8_e4m3fn, complex64, bool, a 0-d tensor and an empty
  one; plus "params_ema".
* mmagic.pth: MMagic's {"state_dict": {"generator.*", "generator_ema.*"}, "meta": {...}} with
  config objects, a NumPy scalar and a set in "meta".
* parameter.pth: a bare nn.Parameter; param_dict.pth: {"w": nn.Parameter, "b": tensor}.
* vgg16_small.pth: a torchvision VGG16 state dict (``features.{i}.weight/bias``, a classifier)
  with narrow widths (2, 2, 4, 4, 4), in the legacy format as torchvision's vgg*.pth files are
  (tests/test_vgg.py reads it without torch).
In each .npz, a key is the path of a tensor in the loaded object ("params/conv.weight"), the
value its torch values (bfloat16 and float8 as float32), and "dtype:<key>" its torch dtype name.
"""

import argparse
import collections
import pathlib

import numpy as np
import torch

HERE = pathlib.Path(__file__).resolve().parent


class TrainConfig:  # stands in for MMagic / mmengine config objects in "meta"
    def __init__(self, lr, scales):
        self.lr, self.scales = lr, scales


def params(g):
    conv = torch.nn.Conv2d(3, 4, 3)
    with torch.no_grad():
        for p in conv.parameters():
            p.copy_(torch.randn(p.shape, generator=g))
    sd = conv.state_dict(prefix="conv.")  # an OrderedDict carrying _metadata
    base = torch.randn(5, 7, generator=g)
    sd["shared.base"] = base
    sd["shared.t"] = base.t()  # non-contiguous view of the same storage
    sd["shared.slice"] = base[1:4, 2:6]  # offset + strides
    sd["shared.row"] = base[3]
    sd["shared.expand"] = base[2, :3].unsqueeze(0).expand(2, 3)  # stride 0
    sd["half"] = torch.randn(2, 3, generator=g).half()
    bf = torch.randn(3, 4, generator=g).to(torch.bfloat16)
    sd["bfloat16"] = bf
    sd["bfloat16_t"] = bf.t()
    sd["double"] = torch.randn(3, generator=g, dtype=torch.float64)
    sd["long"] = torch.randint(-(2**40), 2**40, (4,), generator=g, dtype=torch.int64)
    sd["int"] = torch.randint(-1000, 1000, (2, 2), generator=g, dtype=torch.int32)
    sd["uint8"] = torch.randint(0, 256, (5,), generator=g, dtype=torch.uint8)
    sd["bool"] = torch.rand(2, 3, generator=g) > 0.5
    sd["int8"] = torch.randint(-128, 128, (3,), generator=g, dtype=torch.int8)
    sd["uint16"] = torch.tensor([0, 7, 65535]).to(torch.uint16)  # torch >= 2.3 pickles these with _rebuild_tensor_v3
    sd["float8_e4m3fn"] = torch.randn(2, 2, generator=g).to(torch.float8_e4m3fn)
    sd["complex64"] = torch.randn(3, generator=g, dtype=torch.complex64)
    sd["bn.num_batches_tracked"] = torch.tensor(7)  # 0-d int64
    sd["empty"] = torch.zeros(0, 3)
    ema = collections.OrderedDict((k, v.clone() + 1) for k, v in sd.items() if v.dtype == torch.float32)
    return {"params": sd, "params_ema": ema}


def flat(obj, prefix=""):
    out = {}
    if isinstance(obj, torch.Tensor):
        out[prefix] = obj
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flat(v, f"{prefix}/{k}" if prefix else str(k)))
    return out


def write(name, obj, **save_kw):
    path = HERE / f"{name}.pth"
    torch.save(obj, path, **save_kw)
    arrays = {}
    for key, t in flat(obj).items():
        t = t.detach()
        arrays["dtype:" + key] = np.array(str(t.dtype).removeprefix("torch."))
        exotic = t.dtype in (torch.bfloat16, torch.float8_e4m3fn)  # no NumPy dtype: stored as float32
        arrays[key] = (t.float() if exotic else t).contiguous().numpy()
    np.savez_compressed(HERE / f"{name}.npz", **arrays)
    print(f"{path.name}: {path.stat().st_size} B, {len(arrays) // 2} tensors")


def main():
    argparse.ArgumentParser(description=__doc__).parse_args()
    g = torch.Generator().manual_seed(19)
    sr = params(g)
    write("basicsr_zip", sr)
    write("basicsr_legacy", sr, _use_new_zipfile_serialization=False)
    gen = collections.OrderedDict()
    for prefix in ("generator.", "generator_ema."):
        gen[prefix + "conv_first.weight"] = torch.randn(2, 3, 3, 3, generator=g)
        gen[prefix + "conv_first.bias"] = torch.randn(2, generator=g)
    meta = {
        "epoch": 3,
        "cfg": TrainConfig(2e-4, [2, 4]),
        "np_scalar": np.float64(0.5),
        "seen": {1, 2},
        "mmengine_version": "0.10.0",
    }
    write("mmagic", {"state_dict": gen, "meta": meta})
    write("parameter", torch.nn.Parameter(torch.randn(2, 3, generator=g)))
    write("param_dict", {"w": torch.nn.Parameter(torch.randn(4, generator=g)), "b": torch.randn(2, 2, generator=g)})
    write("vgg16_small", vgg16_small(g), _use_new_zipfile_serialization=False)


def vgg16_small(g, widths=(2, 2, 4, 4, 4), convs=(2, 2, 3, 3, 3)):
    """torchvision's vgg16().features numbering: conv, ReLU per conv, a MaxPool per block."""
    sd, i, cin = collections.OrderedDict(), 0, 3
    for width, n in zip(widths, convs, strict=True):
        for _ in range(n):
            sd[f"features.{i}.weight"] = 0.3 * torch.randn(width, cin, 3, 3, generator=g)
            sd[f"features.{i}.bias"] = 0.3 * torch.randn(width, generator=g)
            i, cin = i + 2, width
        i += 1
    sd["classifier.0.weight"] = torch.randn(3, 5, generator=g)
    return sd


if __name__ == "__main__":
    main()
