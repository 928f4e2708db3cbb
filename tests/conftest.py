"""Shared fixtures: the BasicSR reference vectors and a tiny training config."""

from __future__ import annotations

import importlib.util
import json
import os
import pathlib

# The suite's time is mostly XLA compiling many small programs: without backend
# optimisations it compiles ~3× faster and runs the tiny test programs about as fast
# (the model tests: 230 s -> 145 s). Set VSR_JAX_TEST_XLA_OPT=1 to test optimised code.
# YNNPACK dots (vsr_jax/__init__.py) are off for the same reason; test_bench runs with them.
TEST_XLA_FLAG = "--xla_backend_optimization_level=0"
if os.environ.get("VSR_JAX_TEST_XLA_OPT") != "1":
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + TEST_XLA_FLAG).strip()
    os.environ.setdefault("VSR_JAX_YNN", "0")


def optimised_env() -> dict:
    """os.environ without the suite's opt-level-0 XLA flag: for subprocesses whose run time
    (whole-clip metrics), not compile time, dominates."""
    env = dict(os.environ)
    env["XLA_FLAGS"] = " ".join(f for f in env.get("XLA_FLAGS", "").split() if f != TEST_XLA_FLAG)
    return env


import jax  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Tests make much random data outside jit: the classic Threefry compiles in a fraction of
# the time of the partitionable one on XLA:CPU (see vsr_jax.models.init_variables).
jax.config.update("jax_threefry_partitionable", False)

ROOT = pathlib.Path(__file__).resolve().parents[1]
REFERENCE = pathlib.Path(os.environ.get("VSR_JAX_REFERENCE", ROOT.parent / "shared" / "reference"))


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
    """BasicSR's reference vectors. CI (VSR_JAX_REQUIRE_REFERENCE=1) fails without them; elsewhere they skip."""
    path = REFERENCE / "manifest.json"
    if not path.is_file():
        message = f"BasicSR reference vectors not found at {REFERENCE} (set VSR_JAX_REFERENCE to their directory)"
        if os.environ.get("VSR_JAX_REQUIRE_REFERENCE") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return json.loads(path.read_text())


@pytest.fixture(scope="session")
def reference_images(manifest):
    return {name: dict(np.load(REFERENCE / info["file"])) for name, info in manifest["images"].items()}
