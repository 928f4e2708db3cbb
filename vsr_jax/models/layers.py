"""Building blocks shared by the model families (pure functions of their inputs)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp


def pixel_shuffle(x, scale: int):
    """Depth-to-space (as torch.nn.PixelShuffle): (N, h, w, C·s²) -> (N, h·s, w·s, C).

    Channel order matches PyTorch's, so ported weights keep their meaning.
    """
    n, h, w, c = x.shape
    if c % (scale * scale):
        raise ValueError(f"pixel_shuffle: {c} channels not divisible by {scale}^2")
    oc = c // (scale * scale)
    x = x.reshape(n, h, w, oc, scale, scale)
    x = x.transpose(0, 1, 4, 2, 5, 3)
    return x.reshape(n, h * scale, w * scale, oc)


def upsample_bilinear(x, scale: int):
    """Bilinear ×scale upsampling of (N, h, w, C) with half-pixel centres."""
    n, h, w, c = x.shape
    return jax.image.resize(x, (n, h * scale, w * scale, c), method="bilinear")


def upsample_bicubic(x, scale: int):
    """Bicubic (Keys a = −0.5) ×scale upsampling of (N, h, w, C); the skip of residual SR nets."""
    n, h, w, c = x.shape
    return jax.image.resize(x, (n, h * scale, w * scale, c), method="bicubic")


def per_frame(fn: Callable, lr):
    """Applies a single-image function to every frame of a clip.

    `lr` is (N, T, h, w, C) -> fn on (N·T, h, w, C) -> (N, T, H, W, C'); an (N, h, w, C)
    input is passed straight through (the documented SISR adapter).
    """
    if lr.ndim == 4:
        return fn(lr)
    if lr.ndim != 5:
        raise ValueError(f"expected LR frames (N,T,h,w,C) or (N,h,w,C), got shape {lr.shape}")
    n, t = lr.shape[:2]
    out = fn(lr.reshape((n * t,) + lr.shape[2:]))
    return out.reshape((n, t) + out.shape[1:])


def pad_to_multiple(x, multiple: int):
    """Reflect-pads (N, h, w, C) at bottom/right to multiples of `multiple`; returns (x, (h, w))."""
    h, w = x.shape[1], x.shape[2]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        mode = "reflect" if (ph < h and pw < w) else "edge"
        x = jnp.pad(x, ((0, 0), (0, ph), (0, pw), (0, 0)), mode=mode)
    return x, (h, w)


CONV_IMPLS = ("conv", "matmul", "auto")


def scan_over_time(target, *, reverse: bool = False, unroll: int = 1):
    """`nn.scan` of `target` (a module class or a function of (module, carry, x)) over axis 1,
    the same params at every step: one XLA loop whose size does not grow with T."""
    return nn.scan(
        target,
        variable_broadcast="params",
        split_rngs={"params": False},
        in_axes=1,
        out_axes=1,
        reverse=reverse,
        unroll=unroll,
    )


_DIMS = ("NHWC", "HWIO", "NHWC")


def _conv_same(x, kernel):
    return jax.lax.conv_general_dilated(x, kernel, (1, 1), "SAME", dimension_numbers=_DIMS)


def _pad_same(x, kh: int, kw: int):
    """Zero-pads (N, h, w, C) as a stride-1 'SAME' convolution with a kh×kw kernel does."""
    return jnp.pad(x, ((0, 0), ((kh - 1) // 2, kh // 2), ((kw - 1) // 2, kw // 2), (0, 0)))


def _bias_grad(g):
    """Σ over (N, h, w) of g as a matrix product: XLA:CPU's reduction over those axes is a
    reduce-window, several times slower than ones @ g."""
    m = g.size // g.shape[-1]
    return jnp.dot(jnp.ones((m,), g.dtype), g.reshape(m, g.shape[-1]), preferred_element_type=jnp.float32)


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _cpu_conv(x, kernel, bias, padded_grad: bool):
    return _conv_same(x, kernel) + bias


def _cpu_conv_fwd(x, kernel, bias, padded_grad):
    return _cpu_conv(x, kernel, bias, padded_grad), (x, kernel, bias)


def _cpu_conv_bwd(padded_grad, res, g):
    x, kernel, bias = res
    dx = jax.vjp(lambda x: _conv_same(x, kernel), x)[1](g)[0]
    if padded_grad:
        xp = _pad_same(x, *kernel.shape[:2])
        conv = lambda k: jax.lax.conv_general_dilated(xp, k, (1, 1), "VALID", dimension_numbers=_DIMS)  # noqa: E731
    else:
        conv = lambda k: _conv_same(x, k)  # noqa: E731
    dk = jax.vjp(conv, kernel)[1](g)[0]
    return dx, dk, _bias_grad(g).astype(bias.dtype)


_cpu_conv.defvjp(_cpu_conv_fwd, _cpu_conv_bwd)


def conv2d(x, kernel, bias=None):
    """Stride-1 'SAME' convolution of (N, h, w, Cin) by a (kh, kw, Cin, F) kernel, plus `bias`
    (F,) if given: XLA's convolution, with a backward pass arranged for XLA:CPU.

    On a CPU, (1) the weight gradient of a batch of 1 or 2 images is taken as that of a
    'VALID' convolution of the explicitly padded input: XLA:CPU computes it for the 'SAME'
    form at a fraction of its usual speed for such small batches (larger ones keep the plain
    form, faster there), which is the unrolled recurrent models' case (one clip per step);
    (2) the bias gradient
    is a matrix product (`_bias_grad`). Same function and gradients up to float rounding;
    other backends use XLA's convolution and autodiff as they are.
    """
    if jax.default_backend() != "cpu":
        y = _conv_same(x, kernel)
        return y if bias is None else y + bias
    if bias is None:
        bias = jnp.zeros((kernel.shape[-1],), x.dtype)  # a constant: its gradient is dropped
    return _cpu_conv(x, kernel, bias, x.shape[0] <= 2)


def resolve_conv_impl(impl: str) -> str:
    """'auto' -> 'matmul' on the CPU backend, else 'conv' (see `Conv`)."""
    if impl not in CONV_IMPLS:
        raise ValueError(f"conv_impl must be one of {CONV_IMPLS}, got {impl!r}")
    if impl == "auto":
        return "matmul" if jax.default_backend() == "cpu" else "conv"
    return impl


def loop_conv_impl(train: bool) -> str:
    """The conv implementation for convolutions inside a time loop (`nn.scan`).

    Training on a CPU: 'matmul' (see `Conv`: XLA:CPU's conv weight gradient inside a while
    loop is an order of magnitude slower). Otherwise 'conv': without a backward pass XLA's
    own convolution is faster than the im2col matmul (`vsr-bench`'s inference rows). Both
    compute the same function with the same parameters.
    """
    return "matmul" if train and jax.default_backend() == "cpu" else "conv"


class Conv(nn.Module):
    """A stride-1 'SAME' k×k convolution with `nn.Conv`'s parameters (kernel (k,k,Cin,F), bias).

    `impl="conv"` is exactly `nn.Conv`. `impl="matmul"` computes the same function as an
    im2col matrix product: XLA:CPU computes a convolution's weight gradient inside a while
    loop (the backward pass of `nn.scan`) an order of magnitude slower than outside one, while a matmul's is
    fast, so the recurrent models use it for the convolutions inside their time loop on CPU
    (`"auto"`). (N, h, w, Cin) -> (N, h, w, F).
    """

    features: int
    kernel_size: int = 3
    kernel_init: Callable = nn.linear.default_kernel_init
    bias_init: Callable = nn.initializers.zeros
    use_bias: bool = True
    impl: str = "conv"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        k, cin = self.kernel_size, x.shape[-1]
        kernel = self.param("kernel", self.kernel_init, (k, k, cin, self.features), jnp.float32)
        bias = self.param("bias", self.bias_init, (self.features,), jnp.float32) if self.use_bias else None
        x, kernel = x.astype(self.dtype), kernel.astype(self.dtype)
        bias = None if bias is None else bias.astype(self.dtype)
        if resolve_conv_impl(self.impl) == "conv":
            return conv2d(x, kernel, bias)
        h, w = x.shape[-3], x.shape[-2]
        xp = _pad_same(x, k, k)
        cols = jnp.concatenate([xp[:, i : i + h, j : j + w] for i in range(k) for j in range(k)], axis=-1)
        y = cols @ kernel.reshape(k * k * cin, self.features)
        return y if bias is None else y + bias


class ResidualBlock(nn.Module):
    """conv3×3 → ReLU → conv3×3, added to the input (EDSR/BasicVSR's ResidualBlockNoBN).

    `res_scale` multiplies the residual branch; with `zero_init` the second conv starts at
    zero so a fresh block is the identity. `conv_impl`: see `Conv`. (N, h, w, C) -> same.
    """

    features: int
    res_scale: float = 1.0
    zero_init: bool = False
    conv_impl: str = "conv"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        last_init = nn.initializers.zeros if self.zero_init else nn.linear.default_kernel_init
        y = nn.relu(Conv(self.features, 3, impl=self.conv_impl, dtype=self.dtype, name="Conv_0")(x))
        y = Conv(self.features, 3, kernel_init=last_init, impl=self.conv_impl, dtype=self.dtype, name="Conv_1")(y)
        return x + self.res_scale * y


UPSAMPLER_SCALES = (2, 3, 4, 8)  # what PixelShuffleUpsampler is used with (powers of 2 beyond work too)


def upsample_factors(scale: int) -> list[int]:
    """The pixel-shuffle stages for ×scale: ×2 stages for powers of two, one ×3 for 3."""
    if scale == 3:
        return [3]
    if scale >= 2 and scale & (scale - 1) == 0:
        return [2] * (scale.bit_length() - 1)
    raise ValueError(f"scale {scale} is not supported by this model (use 2, 3, 4 or 8)")


class PixelShuffleUpsampler(nn.Module):
    """(N, h, w, C) -> (N, h·s, w·s, features): per stage 3×3 conv to features·r², pixel
    shuffle ×r, LeakyReLU(0.1) (BasicVSR/EDSR's upsampler; see `upsample_factors`)."""

    scale: int
    features: int
    conv_impl: str = "conv"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        for i, r in enumerate(upsample_factors(self.scale)):
            x = Conv(self.features * r * r, 3, impl=self.conv_impl, dtype=self.dtype, name=f"Conv_{i}")(x)
            x = nn.leaky_relu(pixel_shuffle(x, r), 0.1)
        return x


def dihedral(x, k: int, inverse: bool = False):
    """The k-th (0..7) of the 8 flips/transposes of the spatial axes (−3, −2) of x, or its inverse."""
    flip_h, flip_w, transpose = k & 1, k & 2, k & 4
    if inverse and transpose:
        x = jnp.swapaxes(x, -3, -2)
    if flip_h:
        x = jnp.flip(x, -3)
    if flip_w:
        x = jnp.flip(x, -2)
    if not inverse and transpose:
        x = jnp.swapaxes(x, -3, -2)
    return x
