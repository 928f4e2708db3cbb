"""Makes tests/data/warp_reference.npz with PyTorch: the reference for tests/test_warp.py.

Run with a Python that has torch and numpy (not needed by vsr_jax or its tests):

    python tests/data/make_warp_reference.py

`flow_warp` below follows BasicSR's `basicsr.archs.arch_util.flow_warp`
(https://github.com/XPixelGroup/BasicSR, Apache-2.0), the warp BasicVSR uses: a pixel
grid plus the flow, normalised to [-1, 1] by max(size - 1, 1), then
`F.grid_sample(..., align_corners=True)`. Layouts: torch is NCHW, the npz stores NHWC.
"""

from __future__ import annotations

import pathlib

import numpy as np
import torch
import torch.nn.functional as F

OUT = pathlib.Path(__file__).with_name("warp_reference.npz")


def flow_warp(x, flow, interp_mode="bilinear", padding_mode="zeros", align_corners=True):
    """x (n, c, h, w), flow (n, h, w, 2) in pixels (dx, dy) -> x warped by flow (BasicSR's)."""
    _, _, h, w = x.size()
    grid_y, grid_x = torch.meshgrid(torch.arange(0, h).type_as(x), torch.arange(0, w).type_as(x), indexing="ij")
    grid = torch.stack((grid_x, grid_y), 2).float()
    vgrid = grid + flow
    vgrid_x = 2.0 * vgrid[:, :, :, 0] / max(w - 1, 1) - 1.0
    vgrid_y = 2.0 * vgrid[:, :, :, 1] / max(h - 1, 1) - 1.0
    vgrid_scaled = torch.stack((vgrid_x, vgrid_y), dim=3)
    return F.grid_sample(x, vgrid_scaled, mode=interp_mode, padding_mode=padding_mode, align_corners=align_corners)


def nhwc(t):
    return t.permute(0, 2, 3, 1).contiguous().numpy()


def main():
    rng = np.random.default_rng(20240607)
    x = rng.uniform(0.0, 1.0, (2, 9, 11, 3)).astype(np.float32)
    # Flows: small sub-pixel ones, large ones that leave the image (up to ±14 px), and
    # exact half-outside positions at the edges.
    flow_small = rng.uniform(-1.5, 1.5, (2, 9, 11, 2)).astype(np.float32)
    flow_large = rng.uniform(-14.0, 14.0, (2, 9, 11, 2)).astype(np.float32)
    flow_edge = np.zeros((2, 9, 11, 2), np.float32)
    flow_edge[:, :, :, 0] = rng.choice([-0.5, 0.5, -1.25, 1.25], size=(2, 9, 11))
    flow_edge[:, :, :, 1] = rng.choice([-0.5, 0.5, 0.0, -0.75], size=(2, 9, 11))
    xt = torch.from_numpy(x).permute(0, 3, 1, 2)
    arrays = {"x": x, "torch_version": np.array(torch.__version__)}
    for name, flow in (("small", flow_small), ("large", flow_large), ("edge", flow_edge)):
        arrays[f"flow_{name}"] = flow
        for mode in ("zeros", "border"):
            arrays[f"out_{name}_{mode}"] = nhwc(flow_warp(xt, torch.from_numpy(flow), padding_mode=mode))
    # A one-row image: BasicSR/grid_sample ignore dy there (normalised by max(h - 1, 1) = 1,
    # unnormalised by h - 1 = 0).
    x_row = rng.uniform(0.0, 1.0, (1, 1, 6, 2)).astype(np.float32)
    flow_row = rng.uniform(-2.0, 2.0, (1, 1, 6, 2)).astype(np.float32)
    arrays["x_row"], arrays["flow_row"] = x_row, flow_row
    for mode in ("zeros", "border"):
        arrays[f"out_row_{mode}"] = nhwc(
            flow_warp(torch.from_numpy(x_row).permute(0, 3, 1, 2), torch.from_numpy(flow_row), padding_mode=mode)
        )
    # SpyNet's flow upsampling (align_corners=True, values x2) and FRVSR-style half-pixel
    # bilinear upsampling (align_corners=False), and PixelUnshuffle's channel order.
    lr_flow = rng.normal(0.0, 2.0, (1, 5, 7, 2)).astype(np.float32)
    ft = torch.from_numpy(lr_flow).permute(0, 3, 1, 2)
    arrays["lr_flow"] = lr_flow
    arrays["up2_align_corners"] = nhwc(F.interpolate(ft, scale_factor=2, mode="bilinear", align_corners=True) * 2.0)
    arrays["up4_half_pixel"] = nhwc(F.interpolate(ft, scale_factor=4, mode="bilinear", align_corners=False) * 4.0)
    arrays["unshuffle_in"] = x[:, :8, :10]
    arrays["unshuffle2"] = nhwc(F.pixel_unshuffle(xt[:, :, :8, :10], 2))
    np.savez_compressed(OUT, **arrays)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes) with torch {torch.__version__}")


if __name__ == "__main__":
    main()
