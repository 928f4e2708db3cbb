"""What a run starts from: the newest usable checkpoint of the same model (another model's
is refused, naming the config keys that differ) or, for a fresh run, `init_from` /
`model.spynet_init` weights; what changed since the checkpoint is logged."""

from __future__ import annotations

import json
import os

from absl import logging

from vsr_jax import checkpointing, config_lib
from vsr_jax.init_from import starting_weights
from vsr_jax.train_state import TrainState, state_fields

_WEIGHT_KEYS = ("init_from", "spynet_init")  # where the run's weights came from, in every checkpoint's metadata


def wants_weights(config) -> bool:
    return bool(config.init_from or config.model.get("spynet_init", ""))


def fresh_weights(config, workdir: str, abstract: TrainState, metadata: dict) -> dict | None:
    """A fresh run's starting weights ({path: params}; their record added to `metadata`);
    None when there are none to load or the workdir holds checkpoints. Weights that do not
    fit the model fail here, before anything is written."""
    if not wants_weights(config) or has_checkpoints(workdir):
        return None
    weights, record = starting_weights(config, abstract.params)
    metadata.update(record)
    return weights


def restore(ckpt, config, workdir: str, abstract: TrainState, config_dict: dict, metadata: dict, weights):
    """(the newest usable checkpoint as `restore_newest` gives it, or None; the weights a
    fresh state starts from). A resumed run keeps the weight record of its checkpoints."""
    found = ckpt.restore_newest(state_fields(abstract), check=refuse_other_model(workdir, abstract, config_dict))
    if found:
        saved_metadata = found[3] or {}
        for key in _WEIGHT_KEYS:
            if key in saved_metadata:
                metadata[key] = saved_metadata[key]
            else:
                metadata.pop(key, None)
        if wants_weights(config):
            logging.warning(
                "resuming from step %d: init_from / model.spynet_init are not used (this run started from %s)",
                found[1],
                {k: saved_metadata[k] for k in _WEIGHT_KEYS if k in saved_metadata} or "random",
            )
    elif wants_weights(config) and weights is None:  # no usable checkpoint after all (damaged ones set aside)
        weights, record = starting_weights(config, abstract.params)
        metadata.update(record)
    return found, weights


def has_checkpoints(workdir: str) -> bool:
    directory = checkpointing.checkpoint_dir(workdir)
    return os.path.isdir(directory) and any(n.isdigit() for n in os.listdir(directory))


def config_changes(saved: dict, ours: dict) -> list[str]:
    """'key: old -> new' for every config key that differs (JSON forms compared)."""
    a = config_lib.flatten(json.loads(json.dumps(saved)))
    b = config_lib.flatten(json.loads(json.dumps(ours)))
    return [
        f"{k}: {a.get(k, '(absent)')} -> {b.get(k, '(absent)')}"
        for k in sorted(set(a) | set(b))
        if a.get(k) != b.get(k)
    ]


_SHAPE_SECTIONS = ("model", "data", "gan", "optimizer", "ema_decay", "grad_clip_norm", "flow_lr_mul", "fix_flow_steps")


def refuse_other_model(workdir: str, abstract: TrainState, config_dict: dict):
    """The `check` of `Checkpointer.restore_newest`: refuses a checkpoint whose arrays have
    other shapes than this config's state, naming the config keys that differ."""
    want = {k: v for k, v in checkpointing.leaf_shapes(state_fields(abstract)).items() if not k.startswith("guard/")}

    def check(step, saved_config, saved_metadata, saved_leaves):
        have = {k: v for k, v in saved_leaves.items() if not k.startswith("guard/")}  # older checkpoints: no guard
        if have == want:
            return
        changes = config_changes(saved_config, config_dict)
        shaping = [c for c in changes if c.split(".")[0].split(":")[0] in _SHAPE_SECTIONS]
        if changes:
            raise checkpointing.CheckpointError(
                f"{workdir} holds checkpoints (step {step}) of a model with other shapes; the config differs in "
                f"{'; '.join((shaping or changes)[:6])} (checkpoint -> now): resume with the checkpoint's values, "
                "or use a new --workdir"
            )
        differ = sorted(set(want) ^ set(have)) or sorted(k for k in want if want[k] != have[k])
        raise checkpointing.CheckpointError(
            f"{workdir} holds checkpoints (step {step}) whose arrays differ from this code's model for the same "
            f"config ({len(differ)} arrays, e.g. {differ[0]}): they were written by vsr_jax "
            f"{saved_metadata.get('code_version', '(unknown)')}, this is {checkpointing.code_version()}; "
            "use a new --workdir or that version"
        )

    return check


def log_differences(found, config_dict: dict, metadata: dict) -> None:
    _, step, saved_config, saved_metadata = found
    changes = config_changes(saved_config, config_dict)
    if changes:
        logging.info("config changed since the checkpoint of step %d: %s", step, "; ".join(changes))
    saved_data = saved_metadata.get("dataset")
    if saved_data and saved_data != metadata["dataset"]:
        logging.warning(
            "the training data changed since the checkpoint of step %d (%s -> %s): the resumed run will not see "
            "the batches an uninterrupted run would have",
            step,
            saved_data,
            metadata["dataset"],
        )
    version = saved_metadata.get("code_version")
    if version and version != metadata["code_version"]:
        logging.info("the checkpoint was written by vsr_jax %s; this is %s", version, metadata["code_version"])
