"""Orbax checkpoints of a run: the train state, the config that made it, and metadata.

Layout: ``WORKDIR/checkpoints/<step>/{state,config,metadata}``. `state` is the whole
TrainState (params, optimizer states, step, the non-finite guard's counters); `config`
the run's config as JSON, so a checkpoint can be evaluated or used for upscaling with
nothing but its directory; `metadata` the model name, the code version, the training
data's signature and a checksum of every array of the state.

Integrity: Orbax writes each checkpoint to a temporary directory and renames it when
complete, so a killed or failed save never replaces an older checkpoint. What Orbax does
not see is damage after the fact (a truncated or bit-flipped file): a restore checks
every array against its checksum; a damaged checkpoint is moved to
``WORKDIR/checkpoints_damaged/`` with a warning and the next older one is used.
This module does not import the training code. (Over 500 lines: the writer, the readers of
vsr-eval / vsr-upscale and the integrity checks share the layout and its checksums.)
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import hashlib
import os
import re
import shutil
import subprocess
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from absl import logging

from vsr_jax import config_lib
from vsr_jax.errors import UserError

CHECKPOINT_SUBDIR = "checkpoints"
DAMAGED_SUBDIR = "checkpoints_damaged"


class CheckpointError(UserError, ValueError):
    """A checkpoint directory that is missing, empty, damaged or from an incompatible run."""


class CheckpointWriteError(UserError, OSError):
    """A checkpoint could not be written (disk full, quota, permissions)."""


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(os.path.abspath(workdir), CHECKPOINT_SUBDIR)


def code_version() -> str:
    """vsr_jax's version, plus the git commit when it runs from a checkout ("0.1.0+g65c0c58")."""
    from vsr_jax import __version__

    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(
            ["git", "-C", here, "rev-parse", "--short=7", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return __version__
    commit = out.stdout.strip()
    return f"{__version__}+g{commit}" if out.returncode == 0 and commit else __version__


# ------------------------------------------------------------------------ checksums


def leaf_name(path) -> str:
    """A pytree path as "opt_state/1/0/mu/conv/kernel", the same for a TrainState and the
    dict Orbax reads back (attribute, key and index steps all become plain names)."""
    parts = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(parts)


def named_leaves(tree: Any) -> dict[str, Any]:
    return {leaf_name(p): x for p, x in jax.tree_util.tree_leaves_with_path(tree)}


CHECKSUM_ALGORITHM = "sha256"


def host_array(x: Any) -> np.ndarray:
    """The whole of array `x` as a NumPy array on this host, also in a multi-process run:
    a replicated array (the train state's) from this process's own copy; an array sharded
    over processes gathered from all of them (a collective: every process must call it)."""
    if isinstance(x, jax.Array):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        if not x.is_fully_addressable:
            if x.is_fully_replicated:
                return np.asarray(x.addressable_data(0))
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def array_digest(x: Any) -> str:
    """ "sha256:<hex>" of an array's bytes (C order, the host's little-endian layout): a
    cryptographic hash, so any change to its contents (a flipped bit, two values swapped,
    x <-> -x) gives another digest. Shape and dtype are checked by the restore itself."""
    a = np.ascontiguousarray(host_array(x))
    return f"{CHECKSUM_ALGORITHM}:{hashlib.sha256(a.view(np.uint8).reshape(-1)).hexdigest()}"


def _digests(named: dict[str, Any]) -> dict[str, str]:
    """array_digest of each value; the host copies are made in order (a gather over
    processes is a collective), then hashed in threads (hashlib releases the GIL)."""
    hosts = {k: np.ascontiguousarray(host_array(v)) for k, v in named.items()}
    with concurrent.futures.ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        return dict(zip(hosts, pool.map(array_digest, hosts.values()), strict=True))


def _legacy_checksum(x: jax.Array) -> jax.Array:
    """The uint32 digest checkpoints written before sha256 carry (Σ bitsᵢ·wᵢ mod 2³², odd
    position weights), kept to check those: it misses e.g. two flips of bit 31."""
    if x.dtype == jnp.bool_:
        bits = x.astype(jnp.uint32)
    elif x.dtype.itemsize == 8:
        bits = jax.lax.bitcast_convert_type(x, jnp.uint32)  # (..., 2)
    else:
        bits = jax.lax.bitcast_convert_type(x, jnp.dtype(f"uint{8 * x.dtype.itemsize}")).astype(jnp.uint32)
    bits = bits.reshape(-1)
    weights = jnp.arange(bits.size, dtype=jnp.uint32) * jnp.uint32(2654435761) | jnp.uint32(1)
    return jnp.sum(bits * weights, dtype=jnp.uint32)


@jax.jit
def _legacy_checksums(leaves: dict) -> dict:
    return {k: _legacy_checksum(v) for k, v in leaves.items()}


def state_checksums(state: Any) -> dict[str, str]:
    """{leaf name: "sha256:<hex>"} of every array in `state`, hashed on the host."""
    return _digests(named_leaves(state))


def verify_checksums(state: Any, expected: dict | None) -> list[str]:
    """Names of the arrays of `state` whose digest differs from `expected` (those it names).

    A "sha256:<hex>" entry is checked by hashing; a bare integer is the uint32 digest of a
    checkpoint written before sha256, checked the way it was made; an entry of another kind
    (a later version's) is not checked, with a warning, rather than calling the checkpoint damaged.
    """
    if not expected:
        return []
    unknown, legacy, hashed = [], {}, {}
    for k, x in named_leaves(state).items():
        want = expected.get(k)
        if want is None:
            continue
        if isinstance(want, int) and not isinstance(want, bool):
            legacy[k] = jnp.asarray(host_array(x))  # one program for all of them, below
        elif isinstance(want, str) and want.startswith(CHECKSUM_ALGORITHM + ":"):
            hashed[k] = x
        else:
            unknown.append(k)
    bad = [k for k, v in _digests(hashed).items() if v != expected[k]]
    if legacy:
        sums = jax.device_get(_legacy_checksums(legacy))
        bad += [k for k, v in sums.items() if int(v) != int(expected[k])]
    if unknown:
        logging.warning(
            "%d arrays carry checksums of a kind this version cannot check (e.g. %s: %.20s...); not checked",
            len(unknown),
            unknown[0],
            expected[unknown[0]],
        )
    return sorted(bad)


# ------------------------------------------------------------------- write errors


_OS_ERROR = re.compile(r"os_error_code='?(\d+)")


def describe_write_error(e: BaseException) -> str:
    """'No space left on device' from an OSError or from TensorStore's message about one."""
    if isinstance(e, OSError) and e.errno:
        return os.strerror(e.errno)
    m = _OS_ERROR.search(str(e))
    if m:
        return os.strerror(int(m.group(1)))
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return first.split(" See full TensorStore details")[0][:200]


# ---------------------------------------------------------------------- the manager


def _item_handlers() -> dict:
    return {
        "state": ocp.StandardCheckpointHandler(),
        "config": ocp.JsonCheckpointHandler(),
        "metadata": ocp.JsonCheckpointHandler(),
    }


def _tree_of(metadata: Any) -> Any:
    return getattr(metadata, "tree", metadata)


def leaf_shapes(tree: Any) -> dict[str, tuple]:
    """{leaf name: (shape, dtype name)} of a pytree of arrays, ShapeDtypeStructs or Orbax metadata."""
    return {k: (tuple(v.shape), str(np.dtype(v.dtype))) for k, v in named_leaves(tree).items()}


class Checkpointer:
    """Saves every `save_every` steps (and when forced), keeps the newest `keep`.

    A failed write (disk full, quota, permissions) raises CheckpointWriteError; the
    checkpoints already on disk are left complete.
    """

    def __init__(self, workdir: str, *, save_every: int, keep: int = 3, async_save: bool = True):
        self.workdir = os.path.abspath(workdir)
        self.directory = checkpoint_dir(workdir)
        self.save_every = max(1, int(save_every))
        self._last_save = None
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max(1, int(keep)),
            enable_async_checkpointing=async_save,
            create=True,
        )
        self._remove_unfinished()
        with self._writing("opening"):
            self._manager = ocp.CheckpointManager(self.directory, options=options, item_handlers=_item_handlers())

    def _remove_unfinished(self) -> None:
        """Deletes what a killed or failed save left: Orbax's temporary step folders."""
        if jax.process_index() != 0 or not os.path.isdir(self.directory):
            return
        for name in os.listdir(self.directory):
            if ".orbax-checkpoint-tmp" in name:
                logging.info("removing %s, left by a save that did not finish", name)
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)

    def latest_step(self) -> int | None:
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    # ---------------------------------------------------------------- saving

    @contextlib.contextmanager
    def _writing(self, what):
        try:
            yield
        except CheckpointWriteError:
            raise
        except Exception as e:
            if not (isinstance(e, OSError) or _OS_ERROR.search(str(e))):
                raise
            try:
                self._manager.reload()
                kept = self.all_steps()
            except Exception:  # noqa: BLE001 - only for the message
                kept = []
            intact = f"the checkpoints of steps {', '.join(map(str, kept))} are complete" if kept else "no checkpoint"
            action = f"saving the checkpoint of step {what}" if isinstance(what, int) else f"{what} {self.directory}"
            raise CheckpointWriteError(
                f"{action} failed: {describe_write_error(e)} ({self.directory}); {intact}; "
                "free disk space (or choose another --workdir) and run the same command to resume"
            ) from e

    def should_save(self, step: int) -> bool:
        """Whether `step` is one to save at (a multiple of `save_every`): the one place that decides."""
        return int(step) % self.save_every == 0

    def save(self, step: int, state: Any, config: dict, metadata: dict, *, force: bool = False) -> bool:
        """Starts an (async) save if `should_save(step)` or `force`; returns whether it saved.

        `metadata` is stored with the step and a checksum of every array of `state`.
        """
        if not force and not self.should_save(step):
            return False
        if int(step) == self._last_save or int(step) in self._manager.all_steps():
            return False  # e.g. a stop signal right after the periodic save of this step
        metadata = {**metadata, "step": int(step), "checksums": state_checksums(state)}
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            config=ocp.args.JsonSave(config),
            metadata=ocp.args.JsonSave(metadata),
        )
        with self._writing(self._last_save if self._last_save is not None else int(step)):
            self._manager.wait_until_finished()  # a failed earlier async save is reported as itself
        with self._writing(int(step)):
            saved = self._manager.save(int(step), args=args, force=True)
        if saved:
            self._last_save = int(step)
        return saved

    def wait(self) -> None:
        """Blocks until the running save is on disk; CheckpointWriteError when it failed."""
        with self._writing(self._last_save if self._last_save is not None else "finishing a save in"):
            self._manager.wait_until_finished()

    def close(self, *, quiet: bool = False) -> None:
        """Waits for the running save, then closes; `quiet`: a failed save is logged, not raised
        (when an error is already on its way)."""
        try:
            self.wait()
        except CheckpointWriteError as e:
            if not quiet:
                raise
            logging.warning("%s", e)
        finally:
            self._manager.close()

    # -------------------------------------------------------------- restoring

    def read_json(self, step: int, item: str) -> dict:
        restored = self._manager.restore(int(step), args=ocp.args.Composite(**{item: ocp.args.JsonRestore()}))
        return dict(restored[item])

    def saved_leaves(self, step: int) -> dict[str, tuple]:
        """{leaf name: (shape, dtype)} of the state saved at `step`, from its metadata."""
        return _saved_leaves(self._manager, int(step))

    def restore_newest(self, abstract: dict, *, check=None, accept=None) -> tuple[dict, int, dict, dict] | None:
        """The newest usable checkpoint as (fields, step, config, metadata); None when there is none.

        `abstract` maps the state's field names to ShapeDtypeStructs (with shardings) or
        None; fields the checkpoint does not have are left out of `fields` (the caller
        fills them, or refuses). `check(step, config, metadata, saved_leaves)` may raise to
        refuse a checkpoint of another model: that is not damage, and nothing older is
        tried. Steps where `accept(step, metadata)` is false are passed over.

        A checkpoint that cannot be read or whose arrays fail their checksums is damaged:
        it is reported with a warning and the next older one is tried; when an older one
        is usable the damaged ones are moved to WORKDIR/checkpoints_damaged/, so they are
        not in the way of the steps trained again. With none usable: CheckpointError.
        """
        damaged: list[tuple[int, str]] = []
        for step in sorted(self.all_steps(), reverse=True):
            try:
                config = config_lib.upgrade(self.read_json(step, "config"))  # older runs: strings for tuples
                metadata = self.read_json(step, "metadata")
                saved = self.saved_leaves(step)
                if not saved:
                    raise ValueError("it holds no arrays")
            except Exception as e:  # noqa: BLE001 - unreadable metadata is damage
                damaged.append((step, f"its metadata cannot be read: {describe_write_error(e)}"))
                self._warn_damaged(step, damaged[-1][1])
                continue
            if accept is not None and not accept(step, metadata):
                continue
            if check is not None:
                check(step, config, metadata, saved)
            fields = {k for k in abstract if any(n == k or n.startswith(k + "/") for n in saved)}
            fields |= {k for k in abstract if abstract[k] is None}
            target = {k: abstract[k] for k in sorted(fields)}
            try:
                restored = self._manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))[
                    "state"
                ]
            except Exception as e:  # noqa: BLE001 - truncated or missing array files
                damaged.append((step, f"its arrays cannot be read: {describe_write_error(e)}"))
                self._warn_damaged(step, damaged[-1][1])
                continue
            bad = verify_checksums(restored, metadata.get("checksums"))
            if bad:
                damaged.append((step, f"{len(bad)} arrays do not match their checksums, e.g. {bad[0]}"))
                self._warn_damaged(step, damaged[-1][1])
                continue
            if damaged:
                self._move_damaged([s for s, _ in damaged])
            return dict(restored), step, config, metadata
        if damaged:
            listing = "; ".join(f"step {s}: {why}" for s, why in damaged)
            raise CheckpointError(
                f"no usable checkpoint in {self.directory} ({listing}); move that directory away to start "
                "over, or restore it from a backup"
            )
        return None

    def _warn_damaged(self, step: int, why: str) -> None:
        logging.warning("checkpoint of step %d in %s is damaged (%s); trying an older one", step, self.directory, why)

    def _move_damaged(self, steps: list[int]) -> None:
        target = os.path.join(self.workdir, DAMAGED_SUBDIR)
        if jax.process_index() == 0:
            os.makedirs(target, exist_ok=True)
            for step in steps:
                source = os.path.join(self.directory, str(step))
                dest = os.path.join(target, str(step))
                if os.path.exists(dest):
                    shutil.rmtree(dest)
                shutil.move(source, dest)
                logging.warning("moved the damaged checkpoint of step %d to %s", step, dest)
        if jax.process_count() > 1:
            from jax.experimental import multihost_utils

            multihost_utils.sync_global_devices("vsr_jax_move_damaged_checkpoints")
        self._manager.reload()

    def reached_preemption(self, step: int) -> bool:
        """Orbax's preemption sync point (JAX's distributed service; all processes agree)."""
        return bool(self._manager.reached_preemption(int(step)))


def abstract_like(tree: Any) -> Any:
    """ShapeDtypeStructs (with shardings) of a pytree of arrays, as a restore target."""
    return jax.tree.map(ocp.utils.to_shape_dtype_struct, tree)


# ------------------------------------------------------- reading a run for inference

# Paths in a checkpoint's config name places on the machine that trained it: vsr-eval and
# vsr-upscale neither read nor write there (a copied run folder must not make them decode,
# cache or prepare data somewhere it names); vsr-eval takes them from its flags.
CONFIG_PATH_FIELDS = ("data.path", "data.cache_dir", "data.manual_dir", "data.tfds_data_dir", "loss.vgg_weights")


def without_paths(config: dict, where: str) -> dict:
    """`config` (a checkpoint's) with CONFIG_PATH_FIELDS emptied; logs the ones that were set."""
    config = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    dropped = []
    for field in CONFIG_PATH_FIELDS:
        group, key = field.split(".")
        if isinstance(config.get(group), dict) and config[group].get(key):
            dropped.append(f"{field}={config[group][key]!r}")
            config[group][key] = ""
        elif isinstance(config.get(group), dict) and key in config[group]:
            config[group][key] = ""
    if dropped:
        logging.info("%s: the paths in its config are not used (%s)", where, ", ".join(dropped))
    return config


def model_from_config(config: dict, where: str) -> tuple[Any, Any, Any]:
    """(ConfigDict, model, abstract params) of the model a checkpoint's config names;
    the params are ShapeDtypeStructs (jax.eval_shape: nothing is allocated)."""
    import ml_collections

    try:
        cfg = ml_collections.ConfigDict(config_lib.upgrade(config))  # older runs: strings for tuples
        model = config_lib.build_model(cfg)
        t, s = int(cfg.data.num_frames), int(cfg.data.patch_size)
        abstract = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, t, s, s, 3)))["params"])
    except Exception as e:  # noqa: BLE001 - a config from elsewhere may hold anything
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{where}: its config's model cannot be built ({first})") from None
    return cfg, model, abstract


def _memory_bytes() -> int:
    """What one restore may allocate at most: this machine's RAM, or less on the device."""
    limit = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    try:
        stats = jax.local_devices()[0].memory_stats() or {}
    except Exception:  # noqa: BLE001 - backends without memory stats
        stats = {}
    return min(limit, int(stats.get("bytes_limit", limit)))


def _gib(n: float) -> str:
    return f"{n / 2**30:.3g} GiB"


def check_saved_sizes(saved: dict[str, tuple], abstract: Any, prefix: str, where: str, model: str) -> None:
    """Refuses (CheckpointError, one line) a checkpoint whose `prefix` arrays differ in shape
    or dtype from the model's `abstract` params, or that would not fit in memory. `saved`:
    {leaf name: (shape, dtype)} read from the checkpoint's metadata, before any array is."""
    want = leaf_shapes({prefix: abstract})
    have = {k: v for k, v in saved.items() if k == prefix or k.startswith(prefix + "/")}
    differ = sorted(set(want) ^ set(have)) or sorted(k for k in want if want[k] != have[k])
    if differ:
        k = differ[0]
        detail = f"{k}: saved {_describe(have.get(k))}, the model's {_describe(want.get(k))}"
        raise CheckpointError(
            f"{where} does not hold the {model!r} model its config names ({len(differ)} arrays differ, e.g. "
            f"{detail}); was it copied from another run, or its config edited?"
        )
    total = sum(int(np.prod(shape, dtype=object)) * np.dtype(dtype).itemsize for shape, dtype in want.values())
    if total > _memory_bytes():
        raise CheckpointError(f"{where}: its params take {_gib(total)}, more than the {_gib(_memory_bytes())} here")


def _describe(entry) -> str:
    return "nothing" if entry is None else f"{entry[1]}{list(entry[0])}"


def _saved_leaves(manager, step: int) -> dict[str, tuple]:
    """{leaf name: (shape, dtype)} of the state saved at `step`: its metadata, no array data."""
    return leaf_shapes(_tree_of(manager.item_metadata(step)["state"]))


def _restore_arrays(manager, step: int, target: dict) -> dict:
    """Reads only the arrays of `target` (ShapeDtypeStructs with shardings) from the state of `step`."""
    restore_args = jax.tree.map(
        lambda a: ocp.ArrayRestoreArgs(sharding=a.sharding, global_shape=a.shape, dtype=a.dtype), target
    )
    args = ocp.args.PyTreeRestore(item=target, restore_args=restore_args, partial_restore=True)
    return manager.restore(step, args=ocp.args.Composite(state=args))["state"]


def load_model(workdir: str, step: int | None = None) -> tuple[Any, Any, Any, int]:
    """(config, model, params, step) of a run's checkpoint, for evaluation or inference.

    The model is built from the config saved in the checkpoint; its params (by
    jax.eval_shape) are the restore target, and the checkpoint's array metadata is checked
    against them before anything is read: another model's checkpoint or an absurd size is
    one CheckpointError. Only the params are read (the EMA of the generator's when the run
    kept one, `ema_decay` > 0), onto one local device whatever mesh wrote them, and checked
    against their checksums. The config's paths are emptied (see CONFIG_PATH_FIELDS).

    Raises CheckpointError with what to do when `workdir` holds no checkpoint or the
    checkpoint is damaged (its arrays unreadable or not matching their checksums).
    """
    directory = checkpoint_dir(workdir)
    if not os.path.isdir(directory):
        raise CheckpointError(f"no checkpoints in {workdir} (expected {directory}); train a model there first")
    handlers = {**_item_handlers(), "state": ocp.PyTreeCheckpointHandler()}  # it can read a part of the state
    manager = ocp.CheckpointManager(
        directory, options=ocp.CheckpointManagerOptions(read_only=True), item_handlers=handlers
    )
    try:
        steps = sorted(manager.all_steps())
        step = manager.latest_step() if step is None else int(step)
        if step is None:
            raise CheckpointError(f"{directory} holds no finished checkpoint")
        if step not in steps:
            raise CheckpointError(f"no checkpoint for step {step} in {directory}; have {steps}")
        older = [s for s in steps if s < step]
        hint = f"; an older one can be used with --step={older[-1]}" if older else ""
        where = f"the checkpoint of step {step} in {workdir}"
        try:
            json_args = ocp.args.Composite(config=ocp.args.JsonRestore(), metadata=ocp.args.JsonRestore())
            restored = manager.restore(step, args=json_args)
            config, metadata = dict(restored["config"]), dict(restored["metadata"] or {})
            saved = _saved_leaves(manager, step)
        except Exception as e:  # noqa: BLE001 - missing or unreadable metadata files
            raise CheckpointError(f"{where} is damaged ({describe_write_error(e)}){hint}") from None
        config, model, abstract = model_from_config(without_paths(config, workdir), where)
        name = "ema" if any(k.startswith("ema/") for k in saved) else "params"  # the EMA when the run kept one
        check_saved_sizes(saved, abstract, name, where, config.model.name)
        device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
        target = {name: jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=device), abstract)}
        try:
            params = _restore_arrays(manager, step, target)[name]
        except Exception as e:  # noqa: BLE001 - truncated or missing array files
            raise CheckpointError(f"{where} is damaged ({describe_write_error(e)}){hint}") from None
    finally:
        manager.close()
    expected = metadata.get("checksums") or {}
    bad = verify_checksums({name: params}, {k: v for k, v in expected.items() if k.startswith(name + "/")})
    if bad:
        raise CheckpointError(
            f"{where} is damaged ({len(bad)} arrays do not match their checksums, e.g. {bad[0]}){hint}"
        )
    return config, model, params, step


def load_params(workdir: str, step: int | None = None) -> tuple[dict, Any, int]:
    """(config dict, params, step) of `load_model`."""
    config, _, params, step = load_model(workdir, step)
    return config.to_dict(), params, step


def write_run(workdir: str, config, params: Any, *, step: int = 0, metadata: dict | None = None) -> None:
    """A run folder holding `config` and one checkpoint of `params` at `step` (what vsr-eval
    and vsr-upscale read with `checkpointing.load_model`); `metadata` goes with the step."""
    params = jax.tree.map(jnp.asarray, params)
    ckpt = Checkpointer(workdir, save_every=1, async_save=False)
    try:
        state = {"params": params, "step": jnp.asarray(step)}
        ckpt.save(step, state, config.to_dict(), {**(metadata or {}), "step": step}, force=True)
    except BaseException:
        ckpt.close(quiet=True)
        raise
    ckpt.close()
