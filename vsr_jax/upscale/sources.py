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
    from vsr_jax import checkpointing, config_lib
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
        model = config_lib.build_model(config, dtype="bfloat16")
    label = f"{os.path.realpath(workdir)}@{step}{'/bf16' if bf16 else ''}"
    line = f"model: {config.model.name} x{config.data.scale} from {workdir} step {step}{' (bfloat16)' if bf16 else ''}"
    return job.Model(model, params, int(config.data.num_frames), label, description=line)


def _file_label(path: str) -> str:
    st = os.stat(path)
    return f"{os.path.realpath(path)}:{st.st_size}:{st.st_mtime_ns}"


def weights_model(path: str, bf16: bool, name: str = ""):
    """The model of a weight file (`importer.load_weights`) as a `job.Model`; its resume label
    names the file's real path, size and mtime, so that other weights start a job over."""
    from vsr_jax.pretrained import importer
    from vsr_jax.upscale import job

    if not os.path.isfile(path):
        raise UserError(f"--weights: no weight file {path}")
    config, model, params = importer.load_weights(path, dtype="bfloat16" if bf16 else None)
    label = f"weights:{_file_label(path)}{'/bf16' if bf16 else ''}"
    line = (
        f"model: {config.model.name} x{config.data.scale} from {name or path}"
        f"{' (' + path + ')' if name else ''}{' (bfloat16)' if bf16 else ''}"
    )
    return job.Model(model, params, int(config.data.num_frames), label, description=line)


def _say_unverified(entry, path: str, twin: bool = False) -> None:
    from vsr_jax.pretrained import download

    name = entry.twin_filename if twin else entry.filename
    if (twin or entry.sha256 is None) and download.hash_prefix_from_name(name) is None:
        log(f"{entry.name}: {path} is not hash-verified (no published sha256); its keys and shapes are checked")


def registry_file(entry, progress: bool = True):
    """(entry, path) of the published model `entry` (a `registry.Entry`, or its name): its file
    fetched into the weights cache (`registry.fetch`) unless there already. Entries with no
    known sha256 are read unverified (said in a log line): the file goes through the
    restricted unpickler, which runs no code, and its keys and shapes are checked. A component
    (SpyNet) is one line: it upscales nothing."""
    from vsr_jax.pretrained import registry

    if isinstance(entry, str):
        entry = registry.get(entry)
    if not entry.runnable:
        raise UserError(
            f"{entry.name} is a {entry.arch} ({entry.task}), a part of another model, not a model that upscales; "
            "`python -m vsr_jax.pretrained list` shows those that do"
        )
    path = registry.fetch(entry, progress=progress)
    _say_unverified(entry, path)
    return entry, path


DEFAULT_DENOISE = 0.5  # Real-ESRGAN's inference_realesrgan.py -dn default


def registry_model(entry, bf16: bool, progress: bool = True, denoise: float | None = None):
    """The published model `entry` (a `registry.Entry`, or its name) as a `job.Model`:
    `registry_file`, then `weights_model`. An entry with a `twin` (realesr-general-x4v3) runs
    Real-ESRGAN's denoise strength: its parameters mixed with the twin's (`dni.interpolate_params`,
    denoise·model + (1 − denoise)·twin; default 0.5 as Real-ESRGAN's ``-dn``; 1: the model alone,
    the twin not fetched). `denoise` for an entry without a twin is one line."""
    from vsr_jax.pretrained import registry

    if isinstance(entry, str):
        entry = registry.get(entry)
    if denoise is not None:
        if not entry.twin:
            with_twin = ", ".join(e.name for e in registry.ENTRIES.values() if e.twin)
            raise UserError(
                f"--denoise mixes a model with its denoising twin ({with_twin}); {entry.name} has none: "
                "leave --denoise out"
            )
        if not 0.0 <= denoise <= 1.0:
            raise UserError(f"--denoise must be between 0 and 1 (0: weak denoise, 1: strong), got {denoise:g}")
    strength = denoise if denoise is not None else (DEFAULT_DENOISE if entry.twin else None)
    entry, path = registry_file(entry, progress)
    if strength is None or strength == 1.0:
        return weights_model(path, bf16, name=entry.name)
    twin = registry.fetch(entry, twin=True, progress=progress)
    _say_unverified(entry, twin, twin=True)
    return denoised_model(path, twin, float(strength), bf16, name=entry.name)


def denoised_model(path: str, twin: str, strength: float, bf16: bool, name: str = ""):
    """The model of weight file `path` with its parameters mixed with those of `twin` (same
    architecture and shapes): strength·path + (1 − strength)·twin, as Real-ESRGAN's
    ``RealESRGANer.dni`` (`vsr_jax.pretrained.dni`). Its resume label names both files and
    the strength, so another mix starts a job over."""
    from vsr_jax.pretrained import dni, importer
    from vsr_jax.upscale import job

    config, model, params = importer.load_weights(path, dtype="bfloat16" if bf16 else None)
    twin_config, _, twin_params = importer.load_weights(twin)
    if (twin_config.model.name, int(twin_config.data.scale)) != (config.model.name, int(config.data.scale)):
        raise UserError(
            f"{twin} is a {twin_config.model.name} x{twin_config.data.scale}, not a twin of {path} "
            f"({config.model.name} x{config.data.scale})"
        )
    params = dni.interpolate_params(params, twin_params, strength)
    label = f"weights:{_file_label(path)}+{_file_label(twin)}@dn{strength!r}{'/bf16' if bf16 else ''}"
    line = (
        f"model: {config.model.name} x{config.data.scale} from {name or path}, denoise {strength:g} "
        f"({strength:g} x {os.path.basename(path)} + {1 - strength:g} x {os.path.basename(twin)})"
        f"{' (bfloat16)' if bf16 else ''}"
    )
    return job.Model(model, params, int(config.data.num_frames), label, description=line)


def choose_model(
    workdir: str | None,
    step: int | None,
    weights: str | None,
    name: str | None,
    bf16: bool,
    progress: bool = True,
    denoise: float | None = None,
    options=None,
):
    """The model of exactly one of --workdir / --weights / --model (`denoise`: only with --model,
    for a published model with a denoising twin, see `registry_model`). Logs the start-up
    line: the model and, with the job's `options`, the mode and devices it runs on."""
    model = _choose_model(workdir, step, weights, name, bf16, progress, denoise)
    if options is not None:
        from vsr_jax.upscale import job

        model.description += f"; {job.describe_devices(model, options)}"
    log(model.description)
    return model


def _choose_model(workdir, step, weights, name, bf16, progress, denoise):
    given = [f for f, v in (("--workdir", workdir), ("--weights", weights), ("--model", name)) if v]
    if len(given) > 1:
        raise UserError(f"give one of --workdir, --weights, --model, not {' and '.join(given)}")
    if not given:
        raise UserError(
            "--workdir (a training run), --weights (a weight file) or --model (a published name) is required"
        )
    if step is not None and not workdir:
        raise UserError("--step picks a checkpoint of a --workdir run; a weight file has none")
    if denoise is not None and not name:
        raise UserError("--denoise is the strength of a published model's denoising twin: use it with --model")
    if weights:
        return weights_model(weights, bf16)
    if name:
        return registry_model(name, bf16, progress=progress, denoise=denoise)
    return load_model(workdir, step, bf16)
