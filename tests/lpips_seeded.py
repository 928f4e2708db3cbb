"""Seeded LPIPS weights and images, in torch's layouts, shared by the LPIPS test and the script
that made its reference with the `lpips` package (tests/data/make_lpips_reference.py)."""

import numpy as np

ALEX = {0: (64, 3, 11), 3: (192, 64, 5), 6: (384, 192, 3), 8: (256, 384, 3), 10: (256, 256, 3)}
VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512]
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}


def _vgg_convs():
    convs, i, cin = {}, 0, 3
    for v in VGG16:
        if v == "M":
            i += 1
            continue
        convs[i] = (v, cin, 3)
        cin, i = v, i + 2
    return convs


def seeded_state_dicts(net: str, seed: int = 0):
    """(LPIPS linear-layer state dict, torchvision backbone `features` state dict), numpy float32."""
    rng = np.random.default_rng(seed)
    convs = ALEX if net == "alex" else _vgg_convs()
    backbone = {}
    for i, (cout, cin, k) in convs.items():
        backbone[f"features.{i}.weight"] = (
            rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))
        ).astype(np.float32)
        backbone[f"features.{i}.bias"] = (0.01 * rng.standard_normal(cout)).astype(np.float32)
    lin = {
        f"lin{k}.model.1.weight": np.abs(rng.standard_normal((1, c, 1, 1))).astype(np.float32) * 0.1
        for k, c in enumerate(CHANNELS[net])
    }
    return lin, backbone


def seeded_images(seed: int = 1):
    """Two batches (3, 64, 64, 3) in [0, 1]: smooth images, and noisier versions of them."""
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(0, 1, (3, 8, 8, 3))
    x = np.kron(coarse, np.ones((1, 8, 8, 1)))
    y = np.clip(x + rng.normal(0, [[[[0.02]]], [[[0.1]]], [[[0.3]]]], x.shape), 0, 1)
    return x.astype(np.float32), y.astype(np.float32)
