"""Losses on SR/HR frames (..., H, W, C) in [0,1]; each returns a scalar mean."""

from __future__ import annotations

import jax.numpy as jnp


def mse(sr, hr):
    return jnp.mean(jnp.square(sr - hr))


def l1(sr, hr):
    return jnp.mean(jnp.abs(sr - hr))


def charbonnier(sr, hr, eps: float = 1e-3):
    """sqrt((sr − hr)² + eps²), the robust L1 of LapSRN/EDVR/BasicVSR."""
    return jnp.mean(jnp.sqrt(jnp.square(sr - hr) + eps * eps))


PIXEL_LOSSES = {"mse": mse, "l1": l1, "charbonnier": charbonnier}


def pixel_loss(loss_config):
    """The configured pixel loss as a function (sr, hr) -> scalar."""
    name = loss_config.pixel
    if name not in PIXEL_LOSSES:
        raise ValueError(f"unknown loss.pixel {name!r}; available: {', '.join(PIXEL_LOSSES)}")
    if name == "charbonnier":
        eps = float(loss_config.charbonnier_eps)
        return lambda sr, hr: charbonnier(sr, hr, eps)
    return PIXEL_LOSSES[name]
