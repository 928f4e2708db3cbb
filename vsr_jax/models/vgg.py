"""VGG16 / VGG19 feature extractor for the perceptual loss (not a generator: not in the registry).

The convolutional part of VGG (Simonyan & Zisserman 2015, configurations D and E), no
fully connected layers. Every conv is 3×3, stride 1, 'SAME' padding, followed by ReLU; a
block ends with a 2×2 stride-2 max pool (odd sides are floored, as torch's MaxPool2d).
Layers are named as BasicSR's ``VGGFeatureExtractor`` names them (`vgg_layer_names`):

* VGG16 (blocks of 2, 2, 3, 3, 3 convs)::

    conv1_1 relu1_1 conv1_2 relu1_2 pool1
    conv2_1 relu2_1 conv2_2 relu2_2 pool2
    conv3_1 relu3_1 conv3_2 relu3_2 conv3_3 relu3_3 pool3
    conv4_1 relu4_1 conv4_2 relu4_2 conv4_3 relu4_3 pool4
    conv5_1 relu5_1 conv5_2 relu5_2 conv5_3 relu5_3 pool5

* VGG19 (blocks of 2, 2, 4, 4, 4 convs)::

    conv1_1 relu1_1 conv1_2 relu1_2 pool1
    conv2_1 relu2_1 conv2_2 relu2_2 pool2
    conv3_1 relu3_1 conv3_2 relu3_2 conv3_3 relu3_3 conv3_4 relu3_4 pool3
    conv4_1 relu4_1 conv4_2 relu4_2 conv4_3 relu4_3 conv4_4 relu4_4 pool4
    conv5_1 relu5_1 conv5_2 relu5_2 conv5_3 relu5_3 conv5_4 relu5_4 pool5

``conv*`` outputs are taken before the ReLU (ESRGAN's perceptual loss uses ``conv5_4``),
``relu*`` after it. Block widths are ``widths`` = (64, 128, 256, 512, 512) as published;
narrower widths only serve tests and random-feature experiments.

Input normalisation (``use_input_norm``), for x in [0, 1] (after ``range_norm``, which maps
[-1, 1] to [0, 1]):

* ``input_mode="torch"`` (torchvision / BasicSR weights): RGB, (x − mean) / std with the
  ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225);
* ``input_mode="caffe"`` (the Keras applications weights, converted from Caffe): channels
  reversed to BGR, ×255, minus the Caffe mean (103.939, 116.779, 123.68) (BGR order), no
  std — Keras' ``preprocess_input`` in its "caffe" mode.

With ``use_input_norm=False`` x goes to ``conv1_1`` unchanged (already in the weights'
convention). Weight files are read by ``vsr_jax.vgg_weights``, which says which mode each
file needs.

Parameters: ``params[conv name]["kernel"]`` (3, 3, Cin, Cout) HWIO and ``["bias"]`` (Cout,),
float32, only for the convs up to the deepest requested layer. The network is meant to be
frozen: keep its parameters out of the optimiser (gradients flow to the input only).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

# depth -> convs per block
VGG_BLOCKS = {16: (2, 2, 3, 3, 3), 19: (2, 2, 4, 4, 4)}
VGG_WIDTHS = (64, 128, 256, 512, 512)
INPUT_MODES = ("torch", "caffe")
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # RGB
IMAGENET_STD = (0.229, 0.224, 0.225)  # RGB
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)  # BGR, 0–255


def _blocks(depth: int) -> tuple[int, ...]:
    if depth not in VGG_BLOCKS:
        raise ValueError(f"VGG depth must be 16 or 19, got {depth!r}")
    return VGG_BLOCKS[depth]


def vgg_conv_names(depth: int) -> list[str]:
    """The conv layers of VGG`depth` in order: ['conv1_1', 'conv1_2', 'conv2_1', ...]."""
    return [f"conv{b}_{c}" for b, n in enumerate(_blocks(depth), 1) for c in range(1, n + 1)]


def vgg_layer_names(depth: int) -> list[str]:
    """All layer names of VGG`depth` in order (BasicSR's): conv1_1, relu1_1, ..., pool5."""
    names = []
    for b, n in enumerate(_blocks(depth), 1):
        for c in range(1, n + 1):
            names += [f"conv{b}_{c}", f"relu{b}_{c}"]
        names.append(f"pool{b}")
    return names


def vgg_param_shapes(depth: int, widths: Sequence[int] = VGG_WIDTHS) -> dict[str, dict[str, tuple[int, ...]]]:
    """{conv name: {"kernel": (3, 3, Cin, Cout), "bias": (Cout,)}} for every conv of VGG`depth`."""
    widths = tuple(int(w) for w in widths)
    if len(widths) != 5:
        raise ValueError(f"VGG widths must list 5 block widths, got {widths}")
    shapes, cin = {}, 3
    for b, n in enumerate(_blocks(depth), 1):
        for c in range(1, n + 1):
            shapes[f"conv{b}_{c}"] = {"kernel": (3, 3, cin, widths[b - 1]), "bias": (widths[b - 1],)}
            cin = widths[b - 1]
    return shapes


def normalize_input(x, input_mode: str = "torch", range_norm: bool = False, use_input_norm: bool = True):
    """The input transform of `VGGFeatures` (see the module docstring), float32 (..., 3) -> (..., 3)."""
    if input_mode not in INPUT_MODES:
        raise ValueError(f"VGG input_mode must be one of {INPUT_MODES}, got {input_mode!r}")
    x = x.astype(jnp.float32)
    if range_norm:
        x = (x + 1.0) / 2.0
    if not use_input_norm:
        return x
    if input_mode == "torch":
        return (x - jnp.asarray(IMAGENET_MEAN)) / jnp.asarray(IMAGENET_STD)
    return x[..., ::-1] * 255.0 - jnp.asarray(CAFFE_MEAN_BGR)


class VGGFeatures(nn.Module):
    """VGG16/19 features of the requested layers (see the module docstring).

    Attributes:
      depth: 16 or 19.
      layers: names of the layers to return (`vgg_layer_names`); the network is computed
        only up to the deepest of them.
      use_input_norm: normalise x in [0, 1] for the weights' ``input_mode``.
      range_norm: x is in [-1, 1]: map it to [0, 1] first.
      input_mode: "torch" (RGB, ImageNet mean/std) or "caffe" (BGR, ×255, minus the Caffe
        mean); must match the weights (`vsr_jax.vgg_weights.load_vgg_params` returns it).
      widths: channels of the five blocks.
      dtype: compute dtype; parameters and outputs are float32.

    Shapes: x (N, H, W, 3) -> {name: (N, h, w, C) float32}, where h = floor(H / 2^k) after
    k pools; (N, T, H, W, 3) gives (N, T, h, w, C). Sides must stay ≥ 1 through the pools.
    """

    depth: int = 19
    layers: Sequence[str] = ("conv5_4",)
    use_input_norm: bool = True
    range_norm: bool = False
    input_mode: str = "torch"
    widths: Sequence[int] = VGG_WIDTHS
    dtype: Any = jnp.float32

    def _requested(self) -> list[str]:
        wanted = (self.layers,) if isinstance(self.layers, str) else tuple(self.layers)
        names = vgg_layer_names(self.depth)
        unknown = [n for n in wanted if n not in names]
        if unknown:
            raise ValueError(f"VGG{self.depth} has no layer(s) {unknown}; its layers are {', '.join(names)}")
        if not wanted:
            raise ValueError("VGGFeatures.layers is empty: name at least one layer")
        return list(wanted)

    @nn.compact
    def __call__(self, x) -> dict[str, jax.Array]:
        wanted = self._requested()
        if x.ndim not in (4, 5) or x.shape[-1] != 3:
            raise ValueError(f"VGGFeatures expects RGB frames (N,H,W,3) or (N,T,H,W,3), got shape {x.shape}")
        lead = x.shape[:-3]
        x = x.reshape((-1,) + x.shape[-3:])
        names = vgg_layer_names(self.depth)
        last = max(names.index(n) for n in wanted)
        shapes = vgg_param_shapes(self.depth, self.widths)

        y = normalize_input(x, self.input_mode, self.range_norm, self.use_input_norm).astype(self.dtype)
        out = {}
        for name in names[: last + 1]:
            if name.startswith("conv"):
                features = shapes[name]["bias"][0]
                y = nn.Conv(features, (3, 3), padding="SAME", dtype=self.dtype, name=name)(y)
            elif name.startswith("relu"):
                y = nn.relu(y)
            else:
                if min(y.shape[1:3]) < 2:
                    raise ValueError(f"VGGFeatures: input {x.shape[1:3]} too small to reach {name} ({y.shape[1:3]})")
                y = nn.max_pool(y, (2, 2), strides=(2, 2), padding="VALID")
            if name in wanted:
                out[name] = y.astype(jnp.float32).reshape(lead + y.shape[1:])
        return {n: out[n] for n in wanted}
