"""Shared fixtures: the BasicSR reference vectors and a tiny training config."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib

# The suite's time is mostly XLA compiling many small programs: without backend
# optimisations it compiles ~3× faster and runs the tiny test programs about as fast
# (the model tests: 230 s -> 145 s). Set VSR_JAX_TEST_XLA_OPT=1 to test optimised code.
# YNNPACK dots (vsr_jax/__init__.py) are off for the same reason. The claims users rely on
# (bit-exact resume, chunks = one pass, 1 vs 8 devices) are checked in subprocesses
# started with `optimised_env()`: the default XLA settings and YNN, as users run.
TEST_XLA_FLAG = "--xla_backend_optimization_level=0"
USER_YNN = os.environ.get("VSR_JAX_YNN")  # the caller's own setting, kept in optimised_env()
if os.environ.get("VSR_JAX_TEST_XLA_OPT") != "1":
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + TEST_XLA_FLAG).strip()
    os.environ.setdefault("VSR_JAX_YNN", "0")


def optimised_env(**extra: str) -> dict:
    """os.environ as a user's shell has it (for the claims above, and for subprocesses
    whose run time, not compile time, dominates): without the suite's opt-level-0 XLA flag and its
    VSR_JAX_YNN=0 (vsr_jax then turns YNN on), and with VSR_JAX_TEST_XLA_OPT=1 so a
    subprocess that imports tests.conftest does not put them back. `extra` is added;
    an XLA_FLAGS there is appended to the caller's flags."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split() if f != TEST_XLA_FLAG)
    if USER_YNN is None:
        env.pop("VSR_JAX_YNN", None)
    else:
        env["VSR_JAX_YNN"] = USER_YNN
    env["VSR_JAX_TEST_XLA_OPT"] = "1"
    env["XLA_FLAGS"] = (env["XLA_FLAGS"] + " " + extra.pop("XLA_FLAGS", "")).strip()
    env.update(extra)
    return env


def assert_user_xla_flags(xla_flags: str) -> None:
    """`xla_flags`: XLA_FLAGS as a subprocess started with optimised_env() saw them once it
    had imported vsr_jax. They must be the users' defaults: no opt-level flag, YNN dots on
    (where jaxlib has them and VSR_JAX_YNN is not the caller's own 0)."""
    import vsr_jax

    assert TEST_XLA_FLAG not in xla_flags.split(), xla_flags
    if USER_YNN != "0" and vsr_jax._jaxlib_has_flag(vsr_jax.YNN_FLAG.lstrip("-")):
        assert vsr_jax.YNN_FLAG in xla_flags, xla_flags


import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Tests make much random data outside jit: the classic Threefry compiles in a fraction of
# the time of the partitionable one on XLA:CPU (see vsr_jax.models.init_variables).
jax.config.update("jax_threefry_partitionable", False)

ROOT = pathlib.Path(__file__).resolve().parents[1]
# BasicSR's reference vectors (tests/data/basicsr/PROVENANCE.md); VSR_JAX_REFERENCE points elsewhere
REFERENCE = pathlib.Path(os.environ.get("VSR_JAX_REFERENCE", ROOT / "tests" / "data" / "basicsr"))


def load_config(name: str = "unet", preset: str | None = None):
    """configs/<name>.py's get_config(), or get_config(preset) (as `--config=configs/<name>.py:<preset>`)."""
    spec = importlib.util.spec_from_file_location(f"config_{name}", ROOT / "configs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config() if preset is None else module.get_config(preset)


def override(config, **overrides):
    """Sets dotted fields: override(config, **{"model.features": 8}); returns the config
    (a ConfigDict, or a plain dict from `config.to_dict()`)."""
    for key, value in overrides.items():
        node = config
        *path, last = key.split(".")
        for p in path:
            node = node[p]
        node[last] = value
    return config


def tiny_unet_config(**overrides):
    """The U-Net recipe shrunk to run a step in well under a second on a CPU."""
    config = load_config("unet")
    config.model.features = (8, 16)
    config.data.patch_size = 32
    config.batch_size = 8
    config.total_steps = 30
    config.log_every = 10
    config.eval_every = 1000
    config.checkpoint_every = 10
    config.eval.frame_stride = 25
    return override(config, **overrides)


@pytest.fixture(scope="session")
def straight_run(tmp_path_factory):
    """(workdir, result) of `tiny_unet_config()` trained 30 steps without a break:
    checkpoints at 10, 20, 30. Read it only; copy it to change it."""
    from vsr_jax import train

    workdir = str(tmp_path_factory.mktemp("straight") / "run")
    return workdir, train.train_and_evaluate(tiny_unet_config(total_steps=30), workdir)


@pytest.fixture(scope="session")
def manifest():
    """BasicSR's reference vectors (manifest.json); a missing file fails the tests that use them."""
    return json.loads((REFERENCE / "manifest.json").read_text())


@pytest.fixture(scope="session")
def reference_images(manifest):
    return {name: dict(np.load(REFERENCE / info["file"])) for name, info in manifest["images"].items()}
