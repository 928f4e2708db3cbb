"""The torch-only paths: torchvision `.pth` VGG weights and `tools/convert_lpips`, on files torch wrote.

Skipped where torch is not installed (the CPU wheel is enough: pip install torch==2.13.0+cpu). The VGG
check runs torch's own convolutions on the same weights, so a wrong transpose or layer
index fails here even though the loader's layout helpers round-trip.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest

from tests.conftest import ROOT
from tests.lpips_seeded import seeded_images, seeded_state_dicts
from tests.test_vgg import BASICSR_VGG19, SMALL
from vsr_jax import lpips, vgg_weights
from vsr_jax.models.vgg import IMAGENET_MEAN, IMAGENET_STD, VGGFeatures
from vsr_jax.tools import convert_lpips

LPIPS_REFERENCE = json.loads((ROOT / "tests" / "data" / "lpips_reference.json").read_text())


@pytest.fixture(scope="module")
def torch():
    # imported when these tests run, not when the suite is collected
    return pytest.importorskip("torch", reason="torch not installed (pip install torch==2.13.0+cpu runs these)")


def torch_vgg19(torch, widths):
    """torchvision's vgg19 layout (a `features` Sequential of conv/ReLU/MaxPool, a classifier)
    at narrow widths: its state dict has torchvision's keys."""
    layers, cin = [], 3
    for block, convs in enumerate((2, 2, 4, 4, 4)):
        for _ in range(convs):
            layers += [torch.nn.Conv2d(cin, widths[block], 3, padding=1), torch.nn.ReLU()]
            cin = widths[block]
        layers.append(torch.nn.MaxPool2d(2, 2))
    net = torch.nn.Module()
    net.features = torch.nn.Sequential(*layers)
    net.classifier = torch.nn.Sequential(torch.nn.Linear(cin, 10))  # ignored by the loader
    return net.eval()


@pytest.mark.parametrize("layout", ["zip", "legacy_wrapped"])
def test_vgg_pth_gives_torchs_features(torch, tmp_path, layout):
    torch.manual_seed(0)
    net = torch_vgg19(torch, SMALL)
    path = tmp_path / "vgg19.pth"
    if layout == "zip":
        torch.save(net.state_dict(), path)
    else:  # the pre-1.6 pickle format, inside a {"state_dict": ...} checkpoint
        torch.save({"state_dict": net.state_dict()}, path, _use_new_zipfile_serialization=False)
    params, input_mode = vgg_weights.load_vgg_params(path)  # depth and widths from the file
    assert input_mode == "torch" and len(params) == 16

    x = np.random.default_rng(0).uniform(0.0, 1.0, (2, 32, 32, 3)).astype(np.float32)
    wanted = ("relu1_1", "pool2", "conv3_4", "relu5_4")
    model = VGGFeatures(depth=19, layers=wanted, widths=SMALL, input_mode=input_mode)
    ours = jax.jit(model.apply)({"params": params}, x)

    # torch: ImageNet normalisation, then the Sequential, layer i named BASICSR_VGG19[i]
    y = (torch.from_numpy(x) - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    y = y.permute(0, 3, 1, 2)
    expected = {}
    with torch.no_grad():
        for name, layer in zip(BASICSR_VGG19, net.features, strict=True):
            y = layer(y)
            if name in wanted:
                expected[name] = y.permute(0, 2, 3, 1).numpy()
    for name in wanted:
        scale = float(np.abs(expected[name]).max())
        np.testing.assert_allclose(ours[name], expected[name], rtol=1e-4, atol=1e-5 * scale, err_msg=name)


def test_convert_lpips_from_pth_matches_the_lpips_package(torch, tmp_path, capsys):
    lin, backbone = seeded_state_dicts("alex")
    lin_path, backbone_path, out = tmp_path / "alex.pth", tmp_path / "alexnet-owt-7be5be79.pth", tmp_path / "alex.npz"
    torch.save({k: torch.from_numpy(v) for k, v in lin.items()}, lin_path)
    torch.save({k: torch.from_numpy(v) for k, v in backbone.items()}, backbone_path)

    assert convert_lpips.main([str(lin_path), str(backbone_path), str(out), "--net=alex"]) == 0
    assert f"wrote {out}: LPIPS-alex" in capsys.readouterr().out
    weights, net = lpips.load_lpips(str(out))
    assert net == "alex"
    x, y = seeded_images()
    # the lpips package's distances on these weights and images (tests/data/make_lpips_reference.py)
    np.testing.assert_allclose(lpips.distance(weights, x, y, net), LPIPS_REFERENCE["nets"]["alex"], rtol=2e-4)

    # a backbone of the other net: one line, exit 1, nothing written
    out.unlink()
    vgg_lin, _ = seeded_state_dicts("vgg")
    torch.save({k: torch.from_numpy(v) for k, v in vgg_lin.items()}, lin_path)
    assert convert_lpips.main([str(lin_path), str(backbone_path), str(out), "--net=alex"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is it the alex file" in err[0], err
    assert not out.exists()
