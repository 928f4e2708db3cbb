"""Where vsr-upscale's model comes from: a training run's checkpoint (--workdir), a weight
file (--weights) or a published model by name (--model), each as a `job.Model`. No absl
flags here, so the library and the tests can use it beside other CLIs."""

from __future__ import annotations

import contextlib
import io
import os
import sys

from vsr_jax.errors import UserError


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_model(workdir: str, step: int | None, bf16: bool):
    """The checkpoint's generator (EMA when kept) as a `job.Model`; bad checkpoints are UserErrors."""
    from vsr_jax import checkpointing, config_lib, models
    from vsr_jax.evaluate.runs import load_run
    from vsr_jax.upscale import job

    if not workdir:
        raise UserError("--workdir is required: the training run whose checkpoint upscales")
    # Orbax's worker threads print tracebacks of a failed restore, also after it has raised:
    # stderr stays captured on failure (the caller reports one line on fd 2 and exits at once)
    quiet = contextlib.redirect_stderr(io.StringIO())
    quiet.__enter__()
    try:
        config, model, params, step = load_run(workdir, step)
    except UserError:
        raise
    except Exception as e:  # noqa: BLE001 — Orbax/tensorstore errors on a damaged checkpoint
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise checkpointing.CheckpointError(
            f"cannot read the checkpoint in {workdir} ({type(e).__name__}: {first[:200]}); "
            "is it complete? use another --step or re-copy the run"
        ) from None
    quiet.__exit__(None, None, None)
    if bf16:
        kwargs = {**config_lib.model_kwargs(config), "dtype": "bfloat16"}
        model = models.create_model(config.model.name, int(config.data.scale), kwargs)
    label = f"{os.path.realpath(workdir)}@{step}{'/bf16' if bf16 else ''}"
    log(f"model: {config.model.name} x{config.data.scale} from {workdir} step {step}{' (bfloat16)' if bf16 else ''}")
    return job.Model(model, params, int(config.data.num_frames), label)


def weights_model(path: str, bf16: bool, name: str = ""):
    """The model of a weight file (`importer.load_weights`) as a `job.Model`; its resume label
    names the file's real path, size and mtime, so that other weights start a job over."""
    from vsr_jax.pretrained import importer
    from vsr_jax.upscale import job

    if not os.path.isfile(path):
        raise UserError(f"--weights: no weight file {path}")
    config, model, params = importer.load_weights(path, dtype="bfloat16" if bf16 else None)
    st = os.stat(path)
    label = f"weights:{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}{'/bf16' if bf16 else ''}"
    log(
        f"model: {config.model.name} x{config.data.scale} from {name or path}"
        f"{' (' + path + ')' if name else ''}{' (bfloat16)' if bf16 else ''}"
    )
    return job.Model(model, params, int(config.data.num_frames), label)


def registry_file(entry, progress: bool = True):
    """(entry, path) of the published model `entry` (a `registry.Entry`, or its name): its file
    fetched into the weights cache (`download.fetch`) unless there already. Entries with no
    known sha256 are read unverified (said in a log line): the file goes through the
    restricted unpickler, which runs no code, and its keys and shapes are checked."""
    from vsr_jax.pretrained import download, registry

    if isinstance(entry, str):
        entry = registry.get(entry)
    path = download.fetch(entry.url, sha256=entry.sha256, allow_unverified=entry.sha256 is None, progress=progress)
    if entry.sha256 is None and download.hash_prefix_from_name(entry.filename) is None:
        log(f"{entry.name}: {path} is not hash-verified (no published sha256); its keys and shapes are checked")
    return entry, path


def registry_model(entry, bf16: bool, progress: bool = True):
    """The published model `entry` (a `registry.Entry`, or its name) as a `job.Model`:
    `registry_file`, then `weights_model`."""
    entry, path = registry_file(entry, progress)
    return weights_model(path, bf16, name=entry.name)


def choose_model(
    workdir: str | None, step: int | None, weights: str | None, name: str | None, bf16: bool, progress: bool = True
):
    """The model of exactly one of --workdir / --weights / --model."""
    given = [f for f, v in (("--workdir", workdir), ("--weights", weights), ("--model", name)) if v]
    if len(given) > 1:
        raise UserError(f"give one of --workdir, --weights, --model, not {' and '.join(given)}")
    if not given:
        raise UserError(
            "--workdir (a training run), --weights (a weight file) or --model (a published name) is required"
        )
    if step is not None and not workdir:
        raise UserError("--step picks a checkpoint of a --workdir run; a weight file has none")
    if weights:
        return weights_model(weights, bf16)
    if name:
        return registry_model(name, bf16, progress=progress)
    return load_model(workdir, step, bf16)
