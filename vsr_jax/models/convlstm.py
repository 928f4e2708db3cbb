"""Recurrent video SR with ConvLSTM propagation and learned flow alignment.

The seed study's "deep recurrent ResNet with ConvLSTM layers", built the way BasicVSR
(Chan et al., 2021) builds recurrent VSR:

1. feature extraction, per frame: 3×3 conv + `extract_blocks` residual blocks;
2. alignment: a small SpyNet-style flow network, trained end to end (no pretrained
   weights are available offline; its last layers start at zero, so an untrained model is
   an unaligned one), estimates the flow from each frame to its neighbour, and the
   recurrent state (cell c and hidden h) is backward-warped onto the current frame;
3. propagation: a ConvLSTM cell scanned over time with `nn.scan` — forward only (causal:
   frame t sees frames ≤ t, so it can stream), or bidirectional (a backward pass too, as
   BasicVSR; each frame sees the whole clip);
4. reconstruction, per frame: the hidden states → 1×1 conv + `recon_blocks` residual
   blocks → pixel-shuffle ×2 stages (one ×3 stage for ×3) → 3×3 conv, added to a bicubic
   upsampling of the LR frame. The last conv starts at zero: an untrained model is bicubic.

The time loop is an XLA while loop (`nn.scan`), so the compiled program and its compile
time do not depend on T. Shapes: LR (N, T, h, w, 3) -> SR (N, T, h·s, w·s, 3), any h, w.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax.numpy as jnp

from vsr_jax.models import flow as flow_lib
from vsr_jax.models import layers, register
from vsr_jax.models import warp as warp_lib


def _forget_bias(features: int, value: float = 1.0):
    """Gate bias initialiser: zeros except the forget gate (second quarter) at `value`."""

    def init(key, shape, dtype=jnp.float32):
        del key
        return jnp.zeros(shape, dtype).at[features : 2 * features].set(value)

    return init


class ConvLSTMCell(nn.Module):
    """A convolutional LSTM cell (Shi et al., 2015) with an explicit carry.

    `(c, h), x -> (c', h'), h'` with c, h: (N, h, w, features) and x: (N, h, w, C); the
    four gates come from one conv over concat(x, h). The forget gate's bias starts at 1
    (Jozefowicz et al., 2015). Usable under `nn.scan` (see `ConvLSTMVSR`). `conv_impl`:
    see `layers.Conv` ('auto': a matmul on CPU, where it trains several times faster).
    """

    features: int
    kernel_size: int = 3
    conv_impl: str = "auto"
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, carry, x):
        c, h = carry
        gates = layers.Conv(
            4 * self.features,
            self.kernel_size,
            bias_init=_forget_bias(self.features),
            impl=self.conv_impl,
            dtype=self.dtype,
            name="gates",
        )(jnp.concatenate([x, h], axis=-1))
        i, f, g, o = jnp.split(gates, 4, axis=-1)
        c = nn.sigmoid(f) * c + nn.sigmoid(i) * jnp.tanh(g)
        h = nn.sigmoid(o) * jnp.tanh(c)
        return (c, h), h

    @staticmethod
    def initialize_carry(batch_shape: Sequence[int], features: int, dtype=jnp.float32):
        """Zero (c, h) for frames of spatial shape `batch_shape` = (N, h, w)."""
        zeros = jnp.zeros((*batch_shape, features), dtype)
        return zeros, zeros


def align_state(carry, flow):
    """Backward-warps the ConvLSTM state (c, h) of the frame the carry comes from onto the
    current frame: `flow` (N,h,w,2) maps the current frame onto that one (see `warp`);
    zeros come in at the borders."""
    return tuple(warp_lib.warp(s, flow, padding_mode="zeros") for s in carry)


class _AlignedStep(nn.Module):
    """One time step: warp the carry onto the current frame, then the ConvLSTM cell.

    inputs = (features_t (N,h,w,C), flow_t (N,h,w,2)); flow_t maps frame t to the frame the
    carry comes from (zero for the first frame of a pass, whose carry is zero anyway).
    """

    features: int
    kernel_size: int
    align: bool
    dtype: Any
    conv_impl: str = "conv"  # see layers.loop_conv_impl

    @nn.compact
    def __call__(self, carry, inputs):
        x, flow = inputs
        if self.align:
            carry = align_state(carry, flow)
        cell = ConvLSTMCell(self.features, self.kernel_size, conv_impl=self.conv_impl, dtype=self.dtype, name="cell")
        return cell(carry, x)


def scan_propagate(
    features: int,
    kernel_size: int,
    align: bool,
    dtype,
    *,
    reverse: bool,
    unroll: int,
    name: str,
    conv_impl: str = "conv",
) -> nn.Module:
    """A ConvLSTM pass over time (axis 1) as an XLA loop: (carry, (x, flow)) -> (carry, h)."""
    scanned = layers.scan_over_time(_AlignedStep, reverse=reverse, unroll=unroll)
    return scanned(features, kernel_size, align, dtype, conv_impl, name=name)


@register("convlstm_vsr")
class ConvLSTMVSR(nn.Module):
    """Recurrent VSR: features → flow-aligned ConvLSTM propagation → pixel-shuffle upscale.

    Attributes:
      scale: upscaling factor (2, 3, 4 or 8).
      features: channels of the features and of the ConvLSTM state.
      extract_blocks: residual blocks of the per-frame feature extractor.
      recon_blocks: residual blocks of the per-frame reconstruction.
      kernel_size: ConvLSTM gate kernel.
      bidirectional: add a backward pass (not causal; needs the whole clip or a window).
      align: warp the recurrent state with the learned flow (False: no alignment).
      flow_levels / flow_features / flow_kernel_size: the SpyNet-style flow network's
        pyramid levels, conv widths and kernel size (SpyNet: 6 levels, 7×7).
      unroll: time steps per loop iteration of the scan (more: faster, longer compile).
      dtype: compute dtype; params and output are float32.

    With `align`, the LR flows are recorded with `sow` under `intermediates/flow_to_prev`
    (N, T, h, w, 2) for the flow and temporal losses.
    """

    sows_flows: ClassVar[bool] = True  # with align=True
    flow_modules: ClassVar[tuple[str, ...]] = ("flownet",)  # the flow network's params (optimizers.make_optimizer)

    SCALES = layers.UPSAMPLER_SCALES
    scale: int = 4
    features: int = 64
    extract_blocks: int = 2
    recon_blocks: int = 5
    kernel_size: int = 3
    bidirectional: bool = False
    align: bool = True
    flow_levels: int = 3
    flow_features: Sequence[int] = (32, 64, 32, 16)
    flow_kernel_size: int = 7
    unroll: int = 1
    dtype: Any = jnp.float32

    def _flows(self, lr):
        """Flows of every frame to its previous and next frame: 2 × (N, T, h, w, 2).

        Entry t of `to_prev` maps frame t onto frame t−1 (zero at t = 0); of `to_next`,
        onto frame t+1 (zero at t = T−1). Pairs are batched through the flow network.
        """
        n, t, h, w, _ = lr.shape
        if not self.align or t == 1:
            return jnp.zeros((n, t, h, w, 2), jnp.float32), jnp.zeros((n, t, h, w, 2), jnp.float32)
        flownet = flow_lib.SpyNetLite(
            levels=self.flow_levels,
            features=self.flow_features,
            kernel_size=self.flow_kernel_size,
            dtype=self.dtype,
            name="flownet",
        )
        return flow_lib.clip_flows(flownet, lr, self.bidirectional)

    @property
    def carries_state(self) -> bool:
        """Forward-only models stream chunk by chunk with `state`; bidirectional ones need windows."""
        return not self.bidirectional

    def initial_state(self, lr_first):
        """The state before a video's first frame, LR (N, h, w, 3) -> {"c", "h", "lr"}.

        A zero ConvLSTM carry: warping it gives zeros whatever the flow, so the first
        frame's flow (to itself here) does not matter, as in the one-shot call.
        """
        c, h = ConvLSTMCell.initialize_carry(lr_first.shape[:3], self.features, self.dtype)
        return {"c": c, "h": h, "lr": jnp.asarray(lr_first, jnp.float32)}

    @nn.compact
    def __call__(self, lr, train: bool = False, state=None):
        """LR (N,T,h,w,3) -> SR (N,T,H,W,3); with `state` -> (SR, state after the last frame).

        `state` (forward-only models; from `initial_state` or a previous call) holds the
        ConvLSTM carry and the previous LR frame (N,h,w,3): a video cut into chunks gives
        the same frames as one call on the whole video.
        """
        if lr.ndim != 5:
            raise ValueError(f"convlstm_vsr expects LR clips (N,T,h,w,3), got shape {lr.shape}")
        layers.upsample_factors(self.scale)  # fail early on an unsupported scale
        if state is not None and self.bidirectional:
            raise ValueError("a bidirectional convlstm_vsr sees whole windows; it cannot carry a state")
        n, t, h, w, _ = lr.shape
        f, impl = self.features, layers.loop_conv_impl(train)
        if state is None:
            to_prev, to_next = self._flows(lr)
        else:  # the flow of the chunk's first frame is to the previous chunk's last
            to_prev, to_next = self._flows(jnp.concatenate([jnp.asarray(state["lr"], lr.dtype)[:, None], lr], axis=1))
            to_prev = to_prev[:, 1:]
        if self.align:
            self.sow("intermediates", "flow_to_prev", to_prev)

        def extract(x):
            x = nn.leaky_relu(nn.Conv(f, (3, 3), dtype=self.dtype, name="extract_conv")(x.astype(self.dtype)), 0.1)
            for i in range(self.extract_blocks):
                x = layers.ResidualBlock(f, zero_init=True, dtype=self.dtype, name=f"extract_block_{i}")(x)
            return x

        feats = layers.per_frame(extract, lr)  # (N, T, h, w, F)
        carry = ConvLSTMCell.initialize_carry((n, h, w), f, self.dtype) if state is None else (state["c"], state["h"])

        def propagate(direction: str, flows):
            """The ConvLSTM over time, 'forward' (flows to the previous frame) or 'backward'."""
            scan = scan_propagate(
                f,
                self.kernel_size,
                self.align,
                self.dtype,
                reverse=direction == "backward",
                unroll=self.unroll,
                name=direction,
                conv_impl=impl,
            )
            return scan(carry, (feats, flows))

        final, hidden = propagate("forward", to_prev)
        if self.bidirectional:
            _, backward = propagate("backward", to_next)
            hidden = jnp.concatenate([hidden, backward], axis=-1)

        def reconstruct(x):
            x = nn.leaky_relu(nn.Conv(f, (1, 1), dtype=self.dtype, name="fusion")(x), 0.1)
            for i in range(self.recon_blocks):
                x = layers.ResidualBlock(f, zero_init=True, dtype=self.dtype, name=f"recon_block_{i}")(x)
            x = layers.PixelShuffleUpsampler(self.scale, f, dtype=self.dtype, name="upsample")(x)
            zeros = nn.initializers.zeros
            return nn.Conv(3, (3, 3), kernel_init=zeros, dtype=self.dtype, name="output_conv")(x)

        residual = layers.per_frame(reconstruct, hidden).astype(jnp.float32)
        sr = residual + layers.per_frame(lambda x: layers.upsample_bicubic(x, self.scale), lr)
        if state is None:
            return sr
        return sr, {"c": final[0], "h": final[1], "lr": lr[:, -1].astype(jnp.float32)}
