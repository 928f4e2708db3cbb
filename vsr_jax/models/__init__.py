"""Model registry: `config.model.name` -> a Flax linen module class.

Every generator has one call signature, `model.apply(variables, lr, train=...)`, with
`lr` of shape (N, T, h, w, 3) in [0,1] and output (N, T, h·scale, w·scale, 3) (not
clipped). Single-image models also accept (N, h, w, 3) and then return (N, H, W, 3).
This package imports only jax, flax and numpy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

_REGISTRY: dict[str, type[nn.Module]] = {}


def register(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator that makes a module available as `config.model.name = name`."""

    def wrap(cls: type[nn.Module]) -> type[nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model name {name!r} registered twice")
        _REGISTRY[name] = cls
        return cls

    return wrap


def available() -> list[str]:
    return sorted(_REGISTRY)


def get_model_class(name: str) -> type[nn.Module]:
    if name not in _REGISTRY:
        raise KeyError(f"unknown model.name {name!r}; available: {', '.join(available())}")
    return _REGISTRY[name]


def create_model(name: str, scale: int, kwargs: Mapping[str, Any] | None = None) -> nn.Module:
    """Builds the registered module `name` for upscaling factor `scale`.

    `kwargs` are the module's own fields (from `config.model`, without `name`); an
    unknown field raises a TypeError that names the module and the field. `dtype` may be
    a name ("float32", "bfloat16"): the compute dtype; parameters stay float32.
    """
    cls = get_model_class(name)
    kwargs = dict(kwargs or {})
    if "dtype" in kwargs:
        kwargs["dtype"] = compute_dtype(kwargs["dtype"])
    fields = set(cls.__dataclass_fields__) - {"parent", "name"}
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        raise TypeError(f"model {name!r} has no option(s) {unknown}; its options are {sorted(fields - {'scale'})}")
    return cls(scale=scale, **kwargs)


# No float16: the trainer has no loss scaling, which float16's narrow range needs (its
# gradients underflow); bfloat16 has float32's range and is what TPUs/GPUs speed up.
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


def compute_dtype(value) -> Any:
    """'bfloat16' / jnp.bfloat16 -> jnp.bfloat16; raises ValueError naming the choices."""
    if isinstance(value, str):
        if value not in COMPUTE_DTYPES:
            hint = (
                " (float16 is not offered: training it needs loss scaling; use bfloat16)" if value == "float16" else ""
            )
            raise ValueError(f"model.dtype must be one of {sorted(COMPUTE_DTYPES)}, got {value!r}{hint}")
        return COMPUTE_DTYPES[value]
    return value


def init_variables(model: nn.Module, rng: jax.Array, lr: jax.Array) -> dict:
    """`model.init(rng, lr)`, jitted, with the quick-to-compile Threefry variant.

    XLA:CPU compiles the default (partitionable) Threefry for a network with many small
    kernels several times slower than the classic one; the numbers differ but are just as
    random and still reproducible from the seed.
    """
    with jax.threefry_partitionable(False):
        return jax.jit(model.init)(rng, lr)


# Importing the families registers them.
from vsr_jax.models import (  # noqa: E402,F401
    basicvsr,
    basicvsrpp,
    convlstm,
    edsr,
    edvr,
    iconvsr,
    msrresnet,
    realbasicvsr,
    recurrent_gan,
    rrdbnet,
    runet,
    srcnn,
    srresnet,
    srvgg,
    unet,
)
