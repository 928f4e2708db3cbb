"""Writes tests/data/lpips_reference.json with the `lpips` package (torch) itself.

Weights and images are drawn from numpy seeds (`seeded_weights`, `seeded_images`, which the
test recreates), so the reference holds only the distances. Run where torch, torchvision and
lpips are installed: python tests/data/make_lpips_reference.py
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from tests.lpips_seeded import seeded_images, seeded_state_dicts  # noqa: E402


def main():
    import lpips
    import torch

    out = {"torch": torch.__version__, "lpips": getattr(lpips, "__version__", "?"), "nets": {}}
    x, y = seeded_images()
    for net in ("alex", "vgg"):
        model = lpips.LPIPS(pretrained=False, net=net, pnet_rand=True, verbose=False)
        lin, backbone = seeded_state_dicts(net)
        for k, w in lin.items():
            model.state_dict()[k].copy_(torch.from_numpy(w))
        features = model.net
        slices = [features.slice1, features.slice2, features.slice3, features.slice4, features.slice5]
        for key, w in backbone.items():  # "features.{i}.weight" -> the slice holding layer i
            _, i, kind = key.split(".")
            for sl in slices:
                if i in sl._modules:
                    getattr(sl._modules[i], kind).data.copy_(torch.from_numpy(w))
        model.eval()
        with torch.no_grad():
            tx = torch.from_numpy(x.transpose(0, 3, 1, 2))
            ty = torch.from_numpy(y.transpose(0, 3, 1, 2))
            d = model(tx, ty, normalize=True).reshape(-1).numpy()
        out["nets"][net] = [float(v) for v in d]
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "lpips_reference.json")
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    print(out)


if __name__ == "__main__":
    main()
