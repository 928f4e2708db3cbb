"""Reference outputs of Real-ESRGAN's SRVGGNetCompact for tests/test_published_srvgg.py.

Runs in the authors' venv (tests/data/published/README.md):

    PYTHONPATH=tests/data/published/refstub /tmp/refvenv/bin/python tests/data/published/make_srvgg.py

Writes srvgg.npz, float32 unless said: for each scale x4, x3, x2 a narrow SRVGGNetCompact
(8 features, 3 body convs, PReLU) with every parameter redrawn (the PReLU slopes away from
their 0.25 init, some negative): ``x{s}/sd/<key>`` its state_dict, ``x{s}/input``
(2, 3, h, w) in [0,1] (NCHW, 11×13; 7×9 at x3), ``x{s}/output``; ``lrelu/…`` the same at x2
(5×7) with act_type='leakyrelu'. The denoise strength of realesr-general-x4v3: ``dni/a/<key>`` and
``dni/b/<key>`` two state_dicts of one shape, ``dni/weight`` (scalar) and ``dni/mixed/<key>``
what Real-ESRGAN's own ``RealESRGANer.dni(a, b, [weight, 1 - weight])`` makes of them
(its inference script passes a = realesr-general-x4v3, b = realesr-general-wdn-x4v3,
weight = denoise_strength). ``count/<name>`` (int64): the authors' parameter counts at
the published sizes.
"""

import os
import pathlib
import tempfile

import numpy as np
import torch
from realesrgan.archs.srvgg_arch import SRVGGNetCompact
from realesrgan.utils import RealESRGANer

OUT = pathlib.Path(__file__).with_name("srvgg.npz")
torch.manual_seed(19)


def randomize(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.ndim == 4:  # conv weight: scaled so activations stay O(1)
                p.copy_(torch.randn_like(p) / np.sqrt(p[0].numel()))
            elif p.ndim == 1 and "weight" in name:  # PReLU slope
                p.copy_(torch.rand_like(p) * 0.8 - 0.2)
            else:
                p.copy_(torch.randn_like(p) * 0.1)


def narrow(scale: int, act: str = "prelu") -> SRVGGNetCompact:
    model = SRVGGNetCompact(3, 3, num_feat=8, num_conv=3, upscale=scale, act_type=act).eval()
    randomize(model)
    return model


arrays = {}
cases = (
    ("x4", 4, "prelu", 11, 13),
    ("x3", 3, "prelu", 7, 9),
    ("x2", 2, "prelu", 11, 13),
    ("lrelu", 2, "leakyrelu", 5, 7),
)
for tag, scale, act, h, w in cases:
    model = narrow(scale, act)
    for k, v in model.state_dict().items():
        arrays[f"{tag}/sd/{k}"] = v.numpy()
    x = torch.rand(2, 3, h, w)
    with torch.no_grad():
        arrays[f"{tag}/input"], arrays[f"{tag}/output"] = x.numpy(), model(x).numpy()

weight = 0.3
nets = {"a": narrow(4).state_dict(), "b": narrow(4).state_dict()}
with tempfile.TemporaryDirectory() as tmp:
    paths = {}
    for ab, sd in nets.items():
        paths[ab] = os.path.join(tmp, f"{ab}.pth")
        torch.save({"params": sd}, paths[ab])
        arrays.update({f"dni/{ab}/{k}": v.numpy() for k, v in sd.items()})
    mixed = RealESRGANer.dni(None, paths["a"], paths["b"], [weight, 1 - weight])["params"]
arrays.update({f"dni/mixed/{k}": v.numpy() for k, v in mixed.items()})
arrays["dni/weight"] = np.float32(weight)

published = {  # name: SRVGGNetCompact arguments of the authors' files
    "x4_64_16_prelu": dict(num_feat=64, num_conv=16, upscale=4, act_type="prelu"),  # realesr-animevideov3
    "x4_64_32_prelu": dict(num_feat=64, num_conv=32, upscale=4, act_type="prelu"),  # realesr-general(-wdn)-x4v3
}
for name, kwargs in published.items():
    count = sum(p.numel() for p in SRVGGNetCompact(3, 3, **kwargs).parameters())
    arrays[f"count/{name}"] = np.int64(count)
    print(name, count)

arrays = {k: (v if k.startswith("count/") else np.asarray(v, np.float32)) for k, v in arrays.items()}
np.savez_compressed(OUT, **arrays)
print(OUT, OUT.stat().st_size, "bytes")
