"""Deep network interpolation: the weighted mix of two parameter sets of one architecture.

Real-ESRGAN's denoise strength (``inference_realesrgan.py --denoise_strength``) runs
``realesr-general-x4v3`` mixed with its ``realesr-general-wdn-x4v3`` twin by
``RealESRGANer.dni``: every tensor becomes ``weight·a + (1 − weight)·b`` with
a = general-x4v3, b = general-wdn-x4v3 and weight = the denoise strength (1: the plain
model; 0: the "weak denoise" one). "Deep Network Interpolation for Continuous Imagery
Effect Transition" (Wang et al., CVPR 2019).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from vsr_jax.errors import UserError


def interpolate_params(a: Mapping[str, Any], b: Mapping[str, Any], weight: float, _path: str = "") -> dict:
    """``weight·a + (1 − weight)·b`` for every array of `a` and `b`, float32.

    `a` and `b` are state_dicts (name -> array or CPU tensor) or nested params trees with
    the same keys and shapes; the result has their structure. A key or shape that differs
    raises UserError naming it (the two files are not twins)."""
    if set(a) != set(b):
        key = sorted(set(a) ^ set(b))[0]
        raise UserError(f"cannot mix the parameter sets: {_path}{key} is in only one of them")
    mixed: dict = {}
    for key, va in a.items():
        vb = b[key]
        if isinstance(va, Mapping) or isinstance(vb, Mapping):
            if not (isinstance(va, Mapping) and isinstance(vb, Mapping)):
                raise UserError(f"cannot mix the parameter sets: {_path}{key} is a group in only one of them")
            mixed[key] = interpolate_params(va, vb, weight, f"{_path}{key}/")
            continue
        xa, xb = _array(va), _array(vb)
        if xa.shape != xb.shape:
            raise UserError(
                f"cannot mix the parameter sets: {_path}{key} has shape {list(xa.shape)} and {list(xb.shape)}"
            )
        mixed[key] = (np.float32(weight) * xa + np.float32(1 - weight) * xb).astype(np.float32)
    return mixed


def _array(value) -> np.ndarray:
    value = value.detach().cpu().numpy() if hasattr(value, "detach") else value
    return np.asarray(value, dtype=np.float32)
