"""Reference outputs of BasicSR's RRDBNet (ESRGAN / Real-ESRGAN) for tests/test_published_rrdbnet.py.

Runs in the authors' venv (tests/data/published/README.md):

    PYTHONPATH=tests/data/published/refstub /tmp/refvenv/bin/python tests/data/published/make_rrdbnet.py

Writes rrdbnet.npz, float32 unless said: for each scale x4, x2, x1 a narrow RRDBNet
(4 features, 2 RRDBs, growth 2) with every parameter redrawn (no zero bias hides a bug):
``x{s}/sd/<key>`` its state_dict, ``x{s}/input`` (2, 3, h, w) in [0,1] (NCHW) and
``x{s}/output`` the model's output. At x2 / x1 the input is 12×16 (multiples of 2 and 4, as
BasicSR asserts) and ``x{s}/odd_input`` (2, 3, 11, 13) / ``x{s}/odd_output`` go through
Real-ESRGAN's own RealESRGANer mod pad (reflect) and crop (pre_pad=0, no tiles).
``count/<name>`` (int64): the authors' parameter counts at the published sizes.
"""

import os
import pathlib
import tempfile

import numpy as np
import torch
from basicsr.archs.rrdbnet_arch import RRDBNet
from realesrgan.utils import RealESRGANer

OUT = pathlib.Path(__file__).with_name("rrdbnet.npz")
torch.manual_seed(19)


def randomize(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for p in model.parameters():
            if p.ndim == 4:  # conv weight: scaled so activations stay O(1)
                p.copy_(torch.randn_like(p) / np.sqrt(p[0].numel()))
            else:
                p.copy_(torch.randn_like(p) * 0.1)


def realesrganer_output(model: torch.nn.Module, scale: int, images: torch.Tensor) -> torch.Tensor:
    """Each (3, h, w) image through RealESRGANer.pre_process / process / post_process."""
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "net.pth")
        torch.save({"params": model.state_dict()}, path)
        upsampler = RealESRGANer(scale=scale, model_path=path, model=model, tile=0, pre_pad=0, half=False)
    outs = []
    with torch.no_grad():
        for img in images:
            upsampler.pre_process(img.permute(1, 2, 0).numpy())
            upsampler.process()
            outs.append(upsampler.post_process()[0])
    return torch.stack(outs)


arrays = {}
for scale in (4, 2, 1):
    model = RRDBNet(3, 3, scale=scale, num_feat=4, num_block=2, num_grow_ch=2).eval()
    randomize(model)
    for k, v in model.state_dict().items():
        arrays[f"x{scale}/sd/{k}"] = v.numpy()
    shape = (2, 3, 11, 13) if scale == 4 else (2, 3, 12, 16)
    x = torch.rand(shape)
    with torch.no_grad():
        arrays[f"x{scale}/input"], arrays[f"x{scale}/output"] = x.numpy(), model(x).numpy()
    if scale != 4:
        odd = torch.rand(2, 3, 11, 13)
        arrays[f"x{scale}/odd_input"] = odd.numpy()
        arrays[f"x{scale}/odd_output"] = realesrganer_output(model, scale, odd).numpy()

published = {  # name: RRDBNet arguments of the authors' files
    "x4_64_23_32": dict(scale=4, num_feat=64, num_block=23, num_grow_ch=32),  # ESRGAN_SRx4, RealESRGAN_x4plus
    "x2_64_23_32": dict(scale=2, num_feat=64, num_block=23, num_grow_ch=32),  # RealESRGAN_x2plus
    "x4_64_6_32": dict(scale=4, num_feat=64, num_block=6, num_grow_ch=32),  # RealESRGAN_x4plus_anime_6B
    "x1_64_23_32": dict(scale=1, num_feat=64, num_block=23, num_grow_ch=32),
}
for name, kwargs in published.items():
    count = sum(p.numel() for p in RRDBNet(3, 3, **kwargs).parameters())
    arrays[f"count/{name}"] = np.int64(count)
    print(name, count)

arrays = {k: (v if k.startswith("count/") else np.asarray(v, np.float32)) for k, v in arrays.items()}
np.savez_compressed(OUT, **arrays)
print(OUT, OUT.stat().st_size, "bytes")
