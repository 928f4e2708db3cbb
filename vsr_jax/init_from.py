"""Where a fresh training run's weights come from when not random: `init_from` (a run
folder, a weight file or a published name: every param) or `model.spynet_init` (the flow
network's), checked to fit the config's model exactly (one-line ConfigError)."""

from __future__ import annotations

import os
from collections.abc import Mapping

from absl import logging

from vsr_jax import checkpointing, config_lib, models
from vsr_jax.errors import ConfigError, UserError


def flow_modules(config) -> tuple[str, ...]:
    """The param paths ("spynet", "a/b") of the config's model's flow network (the model
    class's `flow_modules`; () for a model without one)."""
    return tuple(getattr(models.get_model_class(config.model.name), "flow_modules", ()))


def _weight_file(source: str, key: str) -> tuple[str, dict]:
    """(local path, record) of a weight file or a published name (fetched into the weights
    cache unless there: `registry.fetch`); ConfigError naming `key` when it is neither."""
    from vsr_jax.pretrained import download, registry

    if os.path.isfile(os.path.expanduser(source)):
        path = os.path.abspath(os.path.expanduser(source))
        return path, {"kind": "file", "path": path, "sha256": download.sha256_file(path)}
    if source not in registry.ENTRIES:
        raise ConfigError(
            f"{key}={source!r} is no {'run folder, ' if key == 'init_from' else ''}weight file or published name "
            "(`python -m vsr_jax.pretrained list` shows the names)"
        )
    path = registry.fetch(source)
    return path, {"kind": "published", "name": source, "path": path, "sha256": download.sha256_file(path)}


def _model_options(name: str, scale: int, kwargs: dict) -> dict:
    """Every option of the model `name` as built (defaults included), but its compute dtype."""
    model = models.create_model(name, scale, kwargs)
    skip = {"parent", "name", "scale", "dtype"}
    value = lambda v: tuple(v) if isinstance(v, list) else v  # noqa: E731 - a saved config's JSON has lists
    return {f: value(getattr(model, f)) for f in model.__dataclass_fields__ if f not in skip}


def _describe(name: str, scale: int, options: dict, keys) -> str:
    shown = ", ".join(f"{k} {list(v) if isinstance(v, tuple) else v}" for k, v in options.items() if k in keys)
    return f"{name} x{scale}" + (f" with {shown}" if shown else "")


def _check_fits(source: str, have_config, params, config, abstract) -> None:
    """ConfigError (one line) unless the weights of `have_config`'s model fit `config`'s
    model exactly; a log line for options that differ but leave the shapes alike."""
    from vsr_jax.pretrained import convert

    have_name, have_scale = have_config.model.name, int(have_config.data.scale)
    want_name, want_scale = config.model.name, int(config.data.scale)
    have = _model_options(have_name, have_scale, config_lib.model_kwargs(have_config))
    want = _model_options(want_name, want_scale, config_lib.model_kwargs(config))
    same_model = have_name == want_name
    differ = [k for k in want if same_model and have[k] != want[k]]
    try:
        mismatch = None
        convert.check_params(params, abstract, f"init_from {source}")
    except UserError as e:
        mismatch = str(e)
    if have_name != want_name or have_scale != want_scale or mismatch:
        fix = " ".join(f"--config.model.{k}={have[k]}" for k in differ)
        raise ConfigError(
            f"init_from {source} holds a {_describe(have_name, have_scale, have, differ)}, the config builds a "
            f"{_describe(want_name, want_scale, want, differ)}"
            + (f": set {fix}" if fix and have_scale == want_scale else "")
            + (
                f": use a {have_name} config (--config.model.name={have_name}) or {want_name} weights"
                if have_name != want_name
                else ""
            )
            + (
                f": set --config.data.scale={have_scale} or use x{want_scale} weights"
                if same_model and have_scale != want_scale
                else ""
            )
            + ("" if differ or have_name != want_name or have_scale != want_scale else f" ({mismatch})")
        )
    if differ:
        logging.warning(
            "init_from %s was made with %s; this config trains it with %s (the shapes fit)",
            source,
            ", ".join(f"{k}={have[k]}" for k in differ),
            ", ".join(f"{k}={want[k]}" for k in differ),
        )


def load_init_from(config, abstract_params) -> tuple[dict, dict]:
    """(params, record) of `config.init_from`: a run folder (its newest checkpoint's params,
    the EMA's when it kept one), a weight file (`importer.load_weights`: .pth/.npz) or a
    published name (fetched into the weights cache). The weights must fit the config's model
    exactly (ConfigError, one line, naming what differs). `record` says where they came from
    (path, sha256 of a file, step of a run) for the checkpoints' metadata."""
    from vsr_jax.pretrained import importer

    source = str(config.init_from)
    if os.path.isdir(os.path.expanduser(source)):
        path = os.path.abspath(os.path.expanduser(source))
        have_config, _, params, step = checkpointing.load_model(path)
        record = {"kind": "run", "path": path, "step": int(step)}
    else:
        path, record = _weight_file(source, "init_from")
        try:
            have_config, _, params = importer.load_weights(path)
        except UserError as first:
            try:  # a layout the importer cannot tell from its keys: read it as this config's model
                have_config, _, params = importer.load_weights(
                    path, arch=config.model.name, scale=int(config.data.scale), options=config_lib.model_kwargs(config)
                )
            except UserError:
                raise ConfigError(f"init_from: {first}") from None
    _check_fits(source, have_config, params, config, abstract_params)
    return params, {"source": source, **record}


def load_spynet_init(config, abstract_params) -> tuple[dict, dict]:
    """({flow module: params}, record) of `config.model.spynet_init`: SpyNet weights (a
    .pth/.npz file or a published name: BasicSR's spynet_sintel_final-3d2a1287.pth, keys
    ``basic_module.N.basic_module.K.*``, MMagic's spynet_20210409-c6c1bd09.pth in its
    ConvModule names, or a BasicVSR file's ``spynet.*``), converted by name and checked
    against each flow module of the model."""
    from vsr_jax.models import spynet
    from vsr_jax.pretrained import convert, importer, mmagic

    source = str(config.model.spynet_init)
    path, record = _weight_file(source, "model.spynet_init")
    sd, _ = mmagic.select_generator(importer.read_state_dict(path))
    if mmagic.is_mmagic(sd):
        sd = mmagic.to_ours(sd)
    if not any(k.startswith("basic_module.") for k in sd) and any(k.startswith("spynet.") for k in sd):
        sd = {k[len("spynet.") :]: v for k, v in sd.items() if k.startswith("spynet.")}
    try:
        spynet.check_buffers(sd)
    except ValueError as e:
        raise ConfigError(f"model.spynet_init {source}: {e}") from None
    params = convert.state_dict_to_params(sd, skip=spynet.buffer_keys())
    out = {}
    for name in flow_modules(config):
        if subtree(abstract_params, name) is not None:
            try:
                convert.check_params(params, subtree(abstract_params, name), f"model.spynet_init {source}")
            except UserError as e:
                raise ConfigError(
                    f"{e} ({config.model.name}'s flow network {name!r} is not BasicSR's SpyNet?)"
                ) from None
            out[name] = params
    return out, {"source": source, **record}


def starting_weights(config, abstract_params) -> tuple[dict | None, dict]:
    """The params a fresh run starts from instead of the random ones, as {top-level name:
    params} (None: all random), and what to record about them in the checkpoints' metadata:
    `init_from` (all params), else `model.spynet_init` (the flow network's)."""
    if config.init_from:
        if config.model.get("spynet_init", ""):
            logging.info(
                "model.spynet_init is not used: init_from=%s gives every param, the flow network's too",
                config.init_from,
            )
        params, record = load_init_from(config, abstract_params)
        logging.info("starting from the weights of %s (params only: a fresh optimizer, step 0)", record)
        return dict(params), {"init_from": record}
    if config.model.get("spynet_init", ""):
        params, record = load_spynet_init(config, abstract_params)
        logging.info("the flow network (%s) starts from %s", ", ".join(params), record)
        return params, {"spynet_init": record}
    return None, {}


def subtree(tree, path: str):
    """tree["a"]["b"] for path "a/b"; None where it has no such module."""
    for key in path.split("/"):
        if not isinstance(tree, Mapping) or key not in tree:
            return None
        tree = tree[key]
    return tree
