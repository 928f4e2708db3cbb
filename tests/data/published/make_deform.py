"""Reference outputs and gradients of `torchvision.ops.deform_conv2d` for tests/test_deform.py.

Run where the real torchvision is installed (its compiled op; tests/data/published/README.md):

    /tmp/tvenv/bin/python tests/data/published/make_deform.py

Each case: random input, offsets (N(0, 2.5²) px: many taps land between pixels, a share
of them a pixel or more outside the image, where torchvision samples zero), mask
U(0, 1) (or none: DCNv1), kernel and bias; the output and, for a random cotangent g, the
gradients of Σ out·g with respect to the input, offset, mask, weight and bias. Arrays are
in torch's layout (NCHW, OIHW); float32, computed in float64 by torchvision and rounded.
"""

from __future__ import annotations

import pathlib

import numpy as np

HERE = pathlib.Path(__file__).parent

# (n, cin, h, w, cout, k, stride, padding, dilation, groups, deform_groups, with mask)
CASES = (
    (2, 8, 9, 11, 6, 3, 1, 1, 1, 1, 1, True),  # EDVR / BasicVSR++'s form (3x3, pad 1), two images
    (1, 8, 10, 7, 4, 3, 2, 1, 2, 2, 4, True),  # stride, dilation, conv groups, offset groups
    (1, 16, 8, 8, 8, 3, 1, 1, 1, 1, 16, True),  # one channel per offset group (BasicVSR++'s 16 groups)
    (1, 6, 7, 9, 5, 1, 1, 0, 1, 1, 2, True),  # 1x1
    (1, 4, 6, 6, 3, (2, 3), 1, (0, 1), 1, 1, 1, False),  # non-square kernel, DCNv1 (no mask)
)


def case_arrays(i: int) -> dict:
    n, cin, h, w, cout, k, s, p, d, g, dg, with_mask = CASES[i]
    kh, kw = (k, k) if isinstance(k, int) else k
    ph, pw = (p, p) if isinstance(p, int) else p
    ho = (h + 2 * ph - (d * (kh - 1) + 1)) // s + 1
    wo = (w + 2 * pw - (d * (kw - 1) + 1)) // s + 1
    rng = np.random.default_rng([i, 20])
    f = lambda a: a.astype(np.float32)  # noqa: E731
    out = {
        "x": f(rng.standard_normal((n, cin, h, w))),
        "offset": f(2.5 * rng.standard_normal((n, 2 * dg * kh * kw, ho, wo))),
        "weight": f(rng.standard_normal((cout, cin // g, kh, kw)) / np.sqrt(cin // g * kh * kw)),
        "bias": f(rng.uniform(-0.5, 0.5, cout)),
        "cotangent": f(rng.standard_normal((n, cout, ho, wo))),
    }
    if with_mask:
        out["mask"] = f(rng.uniform(0, 1, (n, dg * kh * kw, ho, wo)))
    return out


def main() -> None:
    import torch
    import torchvision
    from torchvision.ops import deform_conv2d

    store = {"versions": np.array([torch.__version__, torchvision.__version__])}
    for i, (*_, s, p, d, _g, _dg, with_mask) in enumerate(CASES):
        a = case_arrays(i)
        t = {k: torch.from_numpy(v).double().requires_grad_(k != "cotangent") for k, v in a.items()}
        y = deform_conv2d(t["x"], t["offset"], t["weight"], t["bias"], s, p, d, t.get("mask"))
        (y * t["cotangent"]).sum().backward()
        store[f"{i}/out"] = y.detach().numpy().astype(np.float32)
        for name in ("x", "offset", "weight", "bias") + (("mask",) if with_mask else ()):
            store[f"{i}/grad_{name}"] = t[name].grad.numpy().astype(np.float32)
        outside = np.mean(np.abs(a["offset"]) > 3)
        print(f"case {i}: out {tuple(y.shape)}, |out| max {y.abs().max():.2f}, offsets > 3 px: {outside:.1%}")
    path = HERE / "deform.npz"
    np.savez_compressed(path, **store)
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
