"""Training: the TrainState, the one train-step builder, and `train_and_evaluate`.

The same code runs on one CPU, several GPUs or a TPU slice: parameters are replicated and
each global batch is split over the mesh axis 'data' (`vsr_jax.sharding`); the jitted
step donates the old state. Checkpoints (Orbax) are saved every `checkpoint_every`
steps, at the end, and on SIGTERM; running the same command again resumes from the
newest one and gives the same parameters as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from typing import Any

import flax
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import logging

from vsr_jax import checkpointing, config_lib, evaluate, losses, metrics, models, sharding
from vsr_jax.data import degrade, pipeline
from vsr_jax.errors import ConfigError, UserError


@flax.struct.dataclass
class TrainState:
    """Everything a step changes. `step` counts finished optimizer steps."""

    step: jax.Array
    params: Any
    opt_state: Any


# ---------------------------------------------------------------------------- config


def validate_config(config: ml_collections.ConfigDict) -> None:
    """Raises ConfigError naming the field and the fix for a config that cannot run."""
    try:
        models.create_model(config.model.name, int(config.data.scale), config_lib.model_kwargs(config))
    except (KeyError, TypeError) as e:
        raise ConfigError(str(e).strip("'\"")) from None
    if config.data.name not in pipeline.DATASETS:
        raise ConfigError(f"unknown data.name {config.data.name!r}; available: {', '.join(pipeline.DATASETS)}")
    if config.data.degradation not in degrade.DEGRADATIONS:
        raise ConfigError(
            f"unknown data.degradation {config.data.degradation!r}; available: {', '.join(degrade.DEGRADATIONS)}"
        )
    if config.data.name == "video_folder" and not config.data.path:
        raise ConfigError("data.name=video_folder needs --config.data.path=DIR (a folder of your videos)")
    if config.data.name == "vimeo90k" and not config.data.manual_dir:
        raise ConfigError(
            "data.name=vimeo90k needs --config.data.manual_dir=DIR, the folder holding vimeo_septuplet.zip "
            "or its unpacked vimeo_septuplet/ (see README: Vimeo-90K)"
        )
    if config.loss.pixel not in losses.PIXEL_LOSSES:
        raise ConfigError(f"unknown loss.pixel {config.loss.pixel!r}; available: {', '.join(losses.PIXEL_LOSSES)}")
    if config.data.scale not in (2, 3, 4, 8):
        raise ConfigError(f"data.scale must be 2, 3, 4 or 8, got {config.data.scale}")
    for field in ("batch_size", "total_steps", "checkpoint_every", "log_every", "eval_every"):
        if int(config[field]) < 1:
            raise ConfigError(f"{field} must be >= 1, got {config[field]}")
    if config.lr_schedule not in ("constant", "cosine"):
        raise ConfigError(f"unknown lr_schedule {config.lr_schedule!r}; use 'constant' or 'cosine'")
    if config.optimizer not in ("adam", "adamw"):
        raise ConfigError(f"unknown optimizer {config.optimizer!r}; use 'adam' or 'adamw'")
    n = jax.device_count()
    if config.batch_size % n:
        raise ConfigError(f"batch_size {config.batch_size} must be a multiple of the {n} devices")


# ------------------------------------------------------------------ state and step


def make_schedule(config) -> optax.Schedule:
    lr, warm, total = float(config.learning_rate), int(config.warmup_steps), int(config.total_steps)
    if config.lr_schedule == "cosine":
        return optax.warmup_cosine_decay_schedule(0.0, lr, warm, max(total, warm + 1))
    if warm:
        return optax.join_schedules([optax.linear_schedule(0.0, lr, warm), optax.constant_schedule(lr)], [warm])
    return optax.constant_schedule(lr)


def make_optimizer(config) -> optax.GradientTransformation:
    schedule = make_schedule(config)
    if config.optimizer == "adamw":
        opt = optax.adamw(schedule, b1=config.adam_b1, b2=config.adam_b2, weight_decay=config.weight_decay)
    else:
        opt = optax.adam(schedule, b1=config.adam_b1, b2=config.adam_b2)
    if config.grad_clip_norm > 0:
        opt = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), opt)
    return opt


def build_model(config):
    return models.create_model(config.model.name, int(config.data.scale), config_lib.model_kwargs(config))


def create_train_state(config, model, tx, mesh) -> TrainState:
    """Initialises parameters and optimizer state, replicated over `mesh`."""
    d = config.data
    dummy = jnp.zeros((1, d.num_frames, d.patch_size, d.patch_size, 3), jnp.float32)

    def init(rng):
        params = model.init(rng, dummy, train=False)["params"]
        return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=tx.init(params))

    with jax.threefry_partitionable(False):  # compiles in ~2 s instead of 5-20 s on CPU (models.init_variables)
        return jax.jit(init, out_shardings=sharding.replicated(mesh))(jax.random.key(config.seed))


def make_train_step(model, tx, config):
    """The one train step of every model family: (state, batch) -> (state, metrics).

    `batch` is {"lr": (B,T,h,w,3), "hr": (B,T,H,W,3)}. The generator objective is the sum
    of the configured weighted terms (pixel now; perceptual/adversarial terms join here).
    """
    pixel = losses.pixel_loss(config.loss)
    pixel_weight = float(config.loss.pixel_weight)
    schedule = make_schedule(config)

    def step(state: TrainState, batch):
        def objective(params):
            sr = model.apply({"params": params}, batch["lr"], train=True)
            terms = {"pixel": pixel(sr, batch["hr"])}
            total = pixel_weight * terms["pixel"]
            return total, (terms, sr)

        (loss, (terms, sr)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        out = {
            "loss": loss,
            **{f"loss_{k}": v for k, v in terms.items()},
            "psnr_rgb": jnp.mean(metrics.psnr(jnp.clip(sr, 0, 1), batch["hr"], y_channel=False)),
            "grad_norm": optax.global_norm(grads),
            "learning_rate": schedule(state.step),
        }
        return state.replace(step=state.step + 1, params=params, opt_state=opt_state), out

    return step


def jit_train_step(step_fn, mesh):
    rep, data = sharding.replicated(mesh), sharding.batch_sharded(mesh)
    return jax.jit(step_fn, in_shardings=(rep, data), out_shardings=(rep, rep), donate_argnums=(0,))


# -------------------------------------------------------------------------- the loop


class _Preemption:
    """Turns SIGTERM into a flag that the loop checks after each step."""

    def __init__(self):
        self.requested = False
        self._previous = None
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGTERM, self._handle)

    def _handle(self, signum, frame):
        logging.warning("SIGTERM received: saving a checkpoint and stopping")
        self.requested = True

    def restore(self):
        if self._previous is not None:
            signal.signal(signal.SIGTERM, self._previous)


def _check_workdir(workdir: str) -> None:
    try:
        os.makedirs(workdir, exist_ok=True)
        probe = os.path.join(workdir, ".write_test")
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise UserError(f"cannot write to workdir {workdir!r} ({e.strerror}); choose a writable --workdir") from None


def _local_copy(tree):
    """This process's copy of a replicated pytree, on one local device (for evaluation)."""
    return jax.tree.map(lambda a: a.addressable_data(0), tree)


def _log_start(mesh, config, start_step, num_params):
    logging.info(
        "backend=%s devices=%d (local %d) mesh=%s processes=%d (this is %d)",
        jax.default_backend(),
        jax.device_count(),
        jax.local_device_count(),
        dict(mesh.shape),
        jax.process_count(),
        jax.process_index(),
    )
    logging.info(
        "model=%s (%s parameters) data=%s x%d",
        config.model.name,
        f"{num_params:,}",
        config.data.name,
        config.data.scale,
    )
    if start_step:
        logging.info("Resuming from step %d", start_step)
    else:
        logging.info("Starting fresh (no checkpoint in the workdir)")


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains `config` in `workdir` (resuming if it holds a checkpoint), then evaluates.

    Returns the final held-out metrics (also written to WORKDIR/eval/metrics.json).
    """
    from clu import metric_writers, periodic_actions
    from tqdm import tqdm

    validate_config(config)
    # Data first: a missing or corrupt dataset fails before anything is written.
    train_source = pipeline.make_source(config.data, "train")
    pipeline.ExampleMaker(train_source, config.data, config.seed)  # raises if the split has no windows
    eval_pairs = pipeline.load_clip_pairs(config.data, "test", int(config.eval.max_clips))
    workdir = os.path.abspath(workdir)
    _check_workdir(workdir)
    is_chief = jax.process_index() == 0

    mesh = sharding.make_mesh()
    model = build_model(config)
    tx = make_optimizer(config)
    state = create_train_state(config, model, tx, mesh)
    num_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(state.params))

    ckpt = checkpointing.Checkpointer(workdir, save_every=config.checkpoint_every, keep=config.keep_checkpoints)
    config_dict = config.to_dict()
    latest = ckpt.latest_step()
    if latest is not None:
        saved = ckpt.restore_json(latest, "config")
        ours = json.loads(json.dumps(config_dict))
        saved_model, saved_scale = saved.get("model"), saved.get("data", {}).get("scale")
        if saved_model != ours["model"] or saved_scale != config.data.scale:
            raise UserError(
                f"{workdir} holds checkpoints of another model ({saved_model}, x{saved_scale}); use a new --workdir"
            )
        state = ckpt.restore_state(latest, checkpointing.abstract_like(state))
    start_step = int(jax.device_get(state.step))
    _log_start(mesh, config, start_step, num_params)
    if is_chief:
        with open(os.path.join(workdir, "config.json"), "w") as f:
            json.dump(config_dict, f, indent=2)

    writer = metric_writers.create_default_writer(workdir, just_logging=not is_chief)
    if start_step == 0:
        writer.write_hparams(config_lib.flatten(config_dict))
    metadata = {"model": config.model.name, "scale": int(config.data.scale), "num_params": num_params}

    train_step = jit_train_step(make_train_step(model, tx, config), mesh)
    total = int(config.total_steps)
    preempt = _Preemption()
    step = start_step
    try:
        if step < total:
            ds = pipeline.make_train_dataset(
                config,
                source=train_source,
                start_step=step,
                process_index=jax.process_index(),
                process_count=jax.process_count(),
            )
            batches = ds.as_numpy_iterator()
            report = periodic_actions.ReportProgress(
                num_train_steps=total, writer=writer, every_secs=None, every_steps=config.log_every
            )
            pending = []
            bar = tqdm(total=total, initial=step, desc="train", unit="step", disable=None if is_chief else True)
            t_first = time.time()
            input_wait = 0.0
            while step < total:
                t_wait = time.perf_counter()
                local = next(batches)
                input_wait += time.perf_counter() - t_wait
                batch = sharding.global_batch(local, mesh)
                state, m = train_step(state, batch)
                step += 1
                if pending:  # keep one step in flight, so progress and ETA count finished steps
                    jax.block_until_ready(pending[-1])
                pending.append(m)
                if step == start_step + 1:
                    jax.block_until_ready(m)
                    logging.info("first step (compile + run) took %.1f s", time.time() - t_first)
                report(step)
                bar.update(1)
                if step % config.log_every == 0 or step == total:
                    summary = {k: float(np.mean([p[k] for p in jax.device_get(pending)])) for k in pending[0]}
                    summary["input_wait_ms"] = 1000 * input_wait / len(pending)  # per step: > 0 means input-bound
                    pending, input_wait = [], 0.0
                    writer.write_scalars(step, summary)
                    bar.set_postfix(loss=f"{summary['loss']:.4g}", psnr=f"{summary['psnr_rgb']:.2f}")
                if step % config.eval_every == 0 and step < total:
                    _preview(model, state, config, eval_pairs, writer, step)
                ckpt.save(
                    step, state, config_dict, {**metadata, "step": step}, force=step == total or preempt.requested
                )
                if preempt.requested:
                    break
            bar.close()
        ckpt.wait()
        if preempt.requested:
            logging.warning("stopped at step %d after SIGTERM; run the same command to resume", step)
            return {"step": step, "preempted": True}
        result = _final_evaluation(model, state, config, eval_pairs, writer, workdir, step)
    finally:
        preempt.restore()
        ckpt.close()
        writer.flush()
        writer.close()
    return result


def _predictor(model, state, config):
    return evaluate.make_predictor(
        model,
        _local_copy(state.params),
        num_frames=int(config.data.num_frames),
        batch_frames=int(config.eval.batch_frames),
    )


def _preview(model, state, config, pairs, writer, step) -> None:
    """Image grids (LR / bicubic / SR / HR) and their Y-PSNR on a few held-out frames."""
    predict = _predictor(model, state, config)
    rows = evaluate.preview_rows(predict, pairs, scale=int(config.data.scale))
    writer.write_images(step, {f"preview/{name}": img[None] for name, _, img in rows})


def _final_evaluation(model, state, config, pairs, writer, workdir, step) -> dict:
    predict = _predictor(model, state, config)
    t0 = time.time()
    result = evaluate.evaluate_clips(
        predict,
        pairs,
        scale=int(config.data.scale),
        crop_border=config_lib.crop_border(config),
        frame_stride=int(config.eval.frame_stride),
    )
    result.update(step=step, crop_border=config_lib.crop_border(config), dataset=f"{config.data.name}/test")
    logging.info("held-out evaluation (%d frames) took %.1f s", result["num_frames"], time.time() - t0)
    writer.write_scalars(
        step, {f"eval/{k}": result[k] for k in ("psnr_y", "ssim_y", "bicubic_psnr_y", "bicubic_ssim_y")}
    )
    if jax.process_index() == 0:
        out = os.path.join(workdir, "eval")
        os.makedirs(out, exist_ok=True)
        evaluate.write_json(result, os.path.join(out, "metrics.json"))
        figure = os.path.join(out, f"samples_step{step}.png")
        evaluate.save_figure(evaluate.preview_rows(predict, pairs, scale=int(config.data.scale)), figure)
        table = evaluate.format_table(result)
        print(f"\nHeld-out Y-PSNR / Y-SSIM at step {step} (crop {result['crop_border']}):\n{table}\n")
        print(f"checkpoints: {checkpointing.checkpoint_dir(workdir)}")
        print(f"metrics:     {os.path.join(out, 'metrics.json')}")
        print(f"figure:      {figure}")
        print(f"tensorboard: tensorboard --logdir {workdir}")
    return result
