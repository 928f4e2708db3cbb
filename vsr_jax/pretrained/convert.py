"""A PyTorch state_dict (name -> array) -> a Flax params tree, by name.

Rule: ``a.b.3.c.weight`` becomes ``("a", "b_3", "c", "kernel")`` — a number after a name
joins it with ``_`` (``nn.Sequential`` / ``nn.ModuleList`` items), so our modules carry
the authors' names. Tensors change layout by kind:

* conv weight (O, I, kh, kw) -> kernel (kh, kw, I, O); conv/linear bias -> bias;
* linear weight (O, I) -> kernel (I, O);
* PReLU weight (C,) -> ``alpha`` (C,) (its name in our modules);
* any other tensor (a buffer such as a mean) keeps its shape under its own name.

`check_params` compares the converted tree with a model's abstract params and names the
missing, unexpected and mis-shaped keys in one line.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from vsr_jax.errors import UserError


def torch_key_to_path(key: str, prelu: frozenset[str] = frozenset()) -> tuple[str, ...]:
    """The Flax path of a state_dict key (see the module docstring); `prelu`: module names
    (dotted, as in `key`) whose ``weight`` is a PReLU slope."""
    *module, leaf = key.split(".")
    parts: list[str] = []
    for p in module:
        if re.fullmatch(r"\d+", p) and parts:
            parts[-1] = f"{parts[-1]}_{p}"
        else:
            parts.append(p)
    if leaf == "weight":
        leaf = "alpha" if ".".join(module) in prelu else "kernel"
    return (*parts, leaf)


def _layout(path: tuple[str, ...], value: np.ndarray) -> np.ndarray:
    if path[-1] == "kernel" and value.ndim == 4:
        return np.transpose(value, (2, 3, 1, 0))
    if path[-1] == "kernel" and value.ndim == 2:
        return value.T
    return value


def state_dict_to_params(
    state_dict: Mapping[str, Any], *, prelu: frozenset[str] = frozenset(), skip: tuple[str, ...] = ()
) -> dict:
    """A nested params dict of float32 NumPy arrays from `state_dict` (torch tensors or arrays).

    `skip`: regular expressions of keys to leave out (e.g. buffers our ports compute
    instead of storing)."""
    params: dict = {}
    for key, value in state_dict.items():
        if any(re.fullmatch(s, key) for s in skip):
            continue
        array = value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)
        path = torch_key_to_path(key, prelu)
        node = params
        for p in path[:-1]:
            node = node.setdefault(p, {})
        if path[-1] in node:
            raise UserError(f"two keys of the weight file map to {'/'.join(path)}; is it a state_dict of this model?")
        node[path[-1]] = np.ascontiguousarray(_layout(path, array), dtype=np.float32)
    return params


def _flat(tree: Mapping, prefix: str = "") -> dict[str, tuple]:
    out = {}
    for k, v in tree.items():
        name = f"{prefix}/{k}" if prefix else str(k)
        if isinstance(v, Mapping):
            out.update(_flat(v, name))
        else:
            out[name] = tuple(v.shape)
    return out


def check_params(params: Mapping, abstract: Mapping, what: str) -> None:
    """Raises UserError (one line) unless `params` has exactly the keys and shapes of
    `abstract` (a model's params, e.g. from jax.eval_shape); `what` names the file."""
    have, want = _flat(params), _flat(abstract)
    missing = sorted(set(want) - set(have))
    unexpected = sorted(set(have) - set(want))
    shapes = sorted(k for k in set(want) & set(have) if want[k] != have[k])
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        if shapes:
            k = shapes[0]
            parts.append(f"{len(shapes)} of another shape (e.g. {k}: file {list(have[k])}, model {list(want[k])})")
        raise UserError(f"{what} does not fit the model: keys {'; '.join(parts)}; is it the right architecture/scale?")
