"""What the parity tests of the published architectures share: their fixtures (made by the
authors' packages, tests/data/published/make_*.py) and the abstract params of a model."""

import importlib.util
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

DATA = pathlib.Path(__file__).parent / "data" / "published"


def fixture(name: str) -> dict:
    """DATA/<name>.npz as a dict of arrays."""
    with np.load(DATA / f"{name}.npz") as f:
        return dict(f)


def recipe(name: str):
    """DATA/make_<name>.py as a module (NumPy only at import; torch only in its main()), for
    the fixtures whose weights are rebuilt from a seed instead of stored."""
    spec = importlib.util.spec_from_file_location(f"make_{name}", DATA / f"make_{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def abstract_params(init, *shapes):
    """The params tree `init(key, *inputs)` makes for float32 inputs of `shapes` (nothing allocated)."""
    inputs = [jax.ShapeDtypeStruct(s, jnp.float32) for s in shapes]
    return jax.eval_shape(init, jax.random.key(0), *inputs)["params"]
