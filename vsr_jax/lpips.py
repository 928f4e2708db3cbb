"""LPIPS (Zhang et al., 2018, v0.1) in JAX with the user's weights, and TecoGAN's tLP.

Nothing is downloaded: LPIPS needs two files the user has or fetches once —

- the LPIPS linear layers of the chosen net: ``alex.pth`` or ``vgg.pth`` shipped inside the
  ``lpips`` pip package (``lpips/weights/v0.1/``), or github.com/richzhang/PerceptualSimilarity;
- the backbone's torchvision ImageNet weights: ``alexnet-owt-7be5be79.pth`` or
  ``vgg16-397923af.pth`` (download.pytorch.org/models/).

Reading ``.pth`` files needs torch; `python -m vsr_jax.tools.convert_lpips` turns the pair into
one ``.npz`` (where torch is installed) that `load_lpips` reads without torch.

LPIPS(x, y), x and y RGB in [0, 1]: both are mapped to [−1, 1] and through LPIPS' scaling
layer, ((2x − 1) − shift) / scale; the backbone's five ReLU outputs (AlexNet: relu1–5;
VGG16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3) are unit-normalised over channels
(ε = 1e-10), their squared difference weighted per channel by the linear layer, averaged
over space and summed over the five layers. tLP (TecoGAN, with AlexNet as its metrics.py):
for each consecutive pair, |LPIPS(gt_{t−1}, gt_t) − LPIPS(out_{t−1}, out_t)| · 100.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vsr_jax.errors import UserError

SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
NETS = ("alex", "vgg")
CHANNELS = {"alex": (64, 192, 384, 256, 256), "vgg": (64, 128, 256, 512, 512)}
# torchvision `features` indices of the convs of each backbone
ALEX_CONVS = {"conv1": 0, "conv2": 3, "conv3": 6, "conv4": 8, "conv5": 10}
VGG_LAYERS = ("relu1_2", "relu2_2", "relu3_3", "relu4_3", "relu5_3")
WHERE = (
    "the LPIPS linear layers (alex.pth / vgg.pth from the lpips pip package's weights/v0.1/) and the "
    "torchvision backbone (alexnet-owt-7be5be79.pth / vgg16-397923af.pth); convert them once with "
    "`python -m vsr_jax.tools.convert_lpips`"
)


class AlexNetFeatures(nn.Module):
    """torchvision AlexNet's `features`: (N, H, W, 3) -> its five ReLU outputs (LPIPS' slices)."""

    @nn.compact
    def __call__(self, x):
        def conv(x, name, f, k, stride=1, pad=0):
            return nn.relu(nn.Conv(f, (k, k), (stride, stride), padding=((pad, pad), (pad, pad)), name=name)(x))

        def pool(x):
            return nn.max_pool(x, (3, 3), (2, 2), padding="VALID")

        r1 = conv(x, "conv1", 64, 11, stride=4, pad=2)
        r2 = conv(pool(r1), "conv2", 192, 5, pad=2)
        r3 = conv(pool(r2), "conv3", 384, 3, pad=1)
        r4 = conv(r3, "conv4", 256, 3, pad=1)
        r5 = conv(r4, "conv5", 256, 3, pad=1)
        return [r1, r2, r3, r4, r5]


def _backbone(net: str):
    if net == "alex":
        module = AlexNetFeatures()
        return lambda params, x: module.apply({"params": params}, x)
    from vsr_jax.models.vgg import VGGFeatures

    module = VGGFeatures(depth=16, layers=VGG_LAYERS, use_input_norm=False)
    return lambda params, x: [module.apply({"params": params}, x)[k] for k in VGG_LAYERS]


def distance(weights: Mapping, x, y, net: str = "alex"):
    """LPIPS of RGB images x, y (N, H, W, 3) in [0, 1] -> (N,). `weights` from `load_lpips`."""
    features = _backbone(net)
    shift, scale = jnp.asarray(SHIFT), jnp.asarray(SCALE)
    prep = lambda im: ((2.0 * jnp.asarray(im, jnp.float32) - 1.0) - shift) / scale  # noqa: E731
    fx, fy = features(weights["backbone"], prep(x)), features(weights["backbone"], prep(y))
    total = 0.0
    for a, b, w in zip(fx, fy, weights["lin"], strict=True):
        na = a / (jnp.sqrt(jnp.sum(a * a, axis=-1, keepdims=True)) + 1e-10)
        nb = b / (jnp.sqrt(jnp.sum(b * b, axis=-1, keepdims=True)) + 1e-10)
        total = total + jnp.mean(jnp.sum(jnp.square(na - nb) * w, axis=-1), axis=(1, 2))
    return total


def tlp(weights: Mapping, output: np.ndarray, target: np.ndarray, net: str = "alex", batch: int = 8) -> float:
    """TecoGAN's tLP of uint8 clips (T, H, W, 3): mean |LPIPS(gt pair) − LPIPS(out pair)| · 100."""
    if np.shape(output) != np.shape(target):
        raise ValueError(f"tLP inputs differ in shape: {np.shape(output)} vs {np.shape(target)}")
    if len(output) < 2:
        return float("nan")
    fn = jax.jit(lambda a, b: distance(weights, a, b, net))
    values = []
    for i in range(1, len(output), batch):
        j = min(i + batch, len(output))
        out = np.asarray(fn(output[i - 1 : j - 1] / 255.0, output[i:j] / 255.0))
        gt = np.asarray(fn(target[i - 1 : j - 1] / 255.0, target[i:j] / 255.0))
        values.append(np.abs(gt - out) * 100.0)
    return float(np.mean(np.concatenate(values)))


# ------------------------------------------------------------------------------ weights


def from_state_dicts(lin: Mapping, backbone: Mapping, net: str) -> dict:
    """The lpips package's linear-layer state dict and torchvision's backbone state dict (arrays
    or tensors) -> {"lin": [(C,) × 5], "backbone": flax params}."""
    arr = lambda v: np.asarray(v.detach().cpu().numpy() if hasattr(v, "detach") else v, np.float32)  # noqa: E731
    lins = []
    for k, c in enumerate(CHANNELS[net]):
        key = f"lin{k}.model.1.weight"
        if key not in lin:
            raise UserError(f"LPIPS linear weights lack {key}; expected {net}.pth of the lpips package")
        w = arr(lin[key]).reshape(-1)
        if w.shape != (c,):
            raise UserError(f"LPIPS {key} has {w.shape[0]} channels, {net} needs {c}: is it the {net} file?")
        lins.append(w)
    if net == "alex":
        params = {}
        for name, i in ALEX_CONVS.items():
            kernel, bias = f"features.{i}.weight", f"features.{i}.bias"
            if kernel not in backbone:
                raise UserError(f"AlexNet weights lack {kernel}; expected torchvision's alexnet-owt-7be5be79.pth")
            params[name] = {"kernel": arr(backbone[kernel]).transpose(2, 3, 1, 0), "bias": arr(backbone[bias])}
    else:
        from vsr_jax import vgg_weights

        params = vgg_weights.torch_state_dict_to_params(backbone, 16, source="the VGG16 backbone")
    return {"lin": lins, "backbone": params}


def save_lpips(path: str, weights: dict, net: str) -> None:
    arrays = {f"lin{k}": w for k, w in enumerate(weights["lin"])}
    for layer, p in weights["backbone"].items():
        arrays.update({f"backbone/{layer}/{k}": np.asarray(v) for k, v in p.items()})
    arrays["net"] = np.array(net)
    np.savez(path, **arrays)


def load_lpips(path: str) -> tuple[dict, str]:
    """Our LPIPS .npz (from `vsr_jax.tools.convert_lpips`) -> (weights, net)."""
    if not path or not os.path.isfile(path):
        raise UserError(f"LPIPS weights {path or '(none given)'} not found: LPIPS needs {WHERE}")
    try:
        with np.load(path) as z:
            net = str(z["net"])
            lins = [z[f"lin{k}"] for k in range(5)]
            backbone: dict = {}
            for key in z.files:
                if key.startswith("backbone/"):
                    _, layer, name = key.split("/")
                    backbone.setdefault(layer, {})[name] = z[key]
    except (OSError, KeyError, ValueError) as e:
        raise UserError(f"{path} is not an LPIPS .npz of vsr_jax ({e}); make one with {WHERE}") from None
    if net not in NETS:
        raise UserError(f"{path}: unknown LPIPS net {net!r}")
    return {"lin": lins, "backbone": backbone}, net
