"""Training: `train_and_evaluate(config, workdir)`, build -> restore -> one loop -> evaluation.

The same code runs on one CPU, several GPUs or a TPU slice: parameters are replicated and
each global batch is split over the mesh axis 'data' (`vsr_jax.sharding`); the jitted
step donates the old state. Checkpoints (Orbax) are saved every `checkpoint_every`
steps, at the end, and on SIGTERM/SIGINT; running the same command again resumes from
the newest usable one and gives the same parameters as an uninterrupted run. A step with
a non-finite loss or gradients is skipped; a run of them sends the loop back to the last
good checkpoint with a lower learning rate (`config.nonfinite`). README: "Resuming and
preemption". The parts: config_lib (validation), optimizers, train_state, train_step,
adversarial (the GAN's discriminator), nonfinite, preemption, resume.
"""

from __future__ import annotations

import json
import os
import time

import jax
import ml_collections
import numpy as np
from absl import logging

from vsr_jax import checkpointing, config_lib, evaluate, fileio, nonfinite, preemption, resume, sharding
from vsr_jax.adversarial import Critic
from vsr_jax.data import pipeline
from vsr_jax.errors import UserError
from vsr_jax.optimizers import make_optimizer
from vsr_jax.train_state import abstract_train_state, create_train_state, from_fields, state_fields, with_weights
from vsr_jax.train_step import build_perceptual, jit_train_step, make_train_step


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
    """Trains `config` in `workdir` (resuming if it holds a checkpoint), then evaluates.

    Returns the final held-out metrics (also written to WORKDIR/eval/metrics.json), or
    {"step", "preempted": True, "signal"} when a stop signal ended the run early (its
    checkpoint saved: the same call resumes it).
    """
    from clu import metric_writers, periodic_actions
    from tqdm import tqdm

    config_lib.validate(config)
    # Data first: a missing or corrupt dataset fails before anything is written.
    train_source = pipeline.make_source(config.data, "train")
    pipeline.ExampleMaker(train_source, config.data, config.seed)  # raises if the split has no windows
    evaluator = evaluate.ClipEvaluator(
        pipeline.load_clip_pairs(config.data, "test", int(config.eval.max_clips)),
        scale=int(config.data.scale),
        crop_border=config_lib.crop_border(config),
        frame_stride=int(config.eval.frame_stride),
        figure_clips=None,
    )
    perceptual, frozen = build_perceptual(config)  # a missing VGG file fails before anything is written
    workdir = os.path.abspath(workdir)
    _check_workdir(workdir)
    is_chief = jax.process_index() == 0

    # Build: the mesh, the networks and their optimizers, the state's shapes.
    mesh = sharding.make_mesh()
    model = config_lib.build_model(config)
    tx = make_optimizer(config)
    critic = Critic(config) if config.gan.loss else None
    d_tx = make_optimizer(config, learning_rate=config.gan.learning_rate, flow=False) if critic else None
    abstract = abstract_train_state(config, model, tx, mesh, critic, d_tx)
    num_params = sum(int(np.prod(p.shape)) for p in jax.tree.leaves(abstract.params))
    config_dict = config.to_dict()
    metadata = {
        "model": config.model.name,
        "scale": int(config.data.scale),
        "num_params": num_params,
        "code_version": checkpointing.code_version(),
        "dataset": pipeline.signature(train_source, config.data),
    }
    weights = resume.fresh_weights(config, workdir, abstract, metadata)
    ckpt = checkpointing.Checkpointer(workdir, save_every=config.checkpoint_every, keep=config.keep_checkpoints)
    signals = preemption.StopSignals(multi_process=jax.process_count() > 1)
    writer, finished = None, False
    try:
        # Restore: the newest usable checkpoint, or a fresh state (from `weights` when given).
        found, weights = resume.restore(ckpt, config, workdir, abstract, config_dict, metadata, weights)

        def fresh_state():
            return with_weights(create_train_state(config, model, tx, mesh, critic, d_tx), weights, mesh)

        state = from_fields(found[0], mesh) if found else fresh_state()
        start = step = int(jax.device_get(state.step))
        _log_start(mesh, config, start, num_params)
        if found:
            resume.log_differences(found, config_dict, metadata)
        if is_chief:
            _write_text(os.path.join(workdir, "config.json"), json.dumps(config_dict, indent=2))
        writer = metric_writers.create_default_writer(workdir, just_logging=not is_chief)
        if start == 0:
            writer.write_hparams(config_lib.flatten(config_dict))
        train_step = jit_train_step(
            make_train_step(model, tx, config, critic=critic, d_tx=d_tx, perceptual=perceptual),
            mesh,
            frozen,
            pretrain_steps=int(config.gan.pretrain_steps),
        )

        def batches_from(step):
            return pipeline.make_train_dataset(
                config,
                source=train_source,
                start_step=step,
                process_index=jax.process_index(),
                process_count=jax.process_count(),
            ).as_numpy_iterator()

        def save(step, *, force=False):  # the Checkpointer decides when (checkpoint_every), unless forced
            run = int(jax.device_get(state.guard.bad_run))
            ckpt.save(step, state_fields(state), config_dict, {**metadata, "nonfinite_run": run}, force=force)

        def progress():  # a new one after going back to a checkpoint
            return periodic_actions.ReportProgress(
                num_train_steps=total, writer=writer, every_secs=None, every_steps=config.log_every
            )

        def preview(step, t, state):
            with report.timed("preview"):
                _preview(model, state, config, evaluator, writer, step)

        # The loop: one step in flight (its metrics are read a step later, so the host never waits
        # for the device), logging every `log_every`, previews every `eval_every`, checkpoints.
        total, patience = int(config.total_steps), int(config.nonfinite.patience)
        batches, report = batches_from(step) if step < total else None, progress()
        previews = periodic_actions.PeriodicCallback(
            on_steps=range(int(config.eval_every), total, int(config.eval_every)), callback_fn=preview
        )
        bar = tqdm(
            total=total, initial=step, desc="train", unit="step", disable=None if is_chief and step < total else True
        )
        pending, input_wait, bad_run, stopped_by, t_steady = [], 0.0, 0, None, None
        t_first = time.perf_counter()
        while step < total:
            if signals.requested(ckpt, step):  # before the first step too: a signal during start-up
                save(step, force=True)
                stopped_by = signals.signum
                break
            t_wait = time.perf_counter()
            local = next(batches)
            input_wait += time.perf_counter() - t_wait
            state, m = train_step(state, sharding.global_batch(local, mesh))
            step += 1
            if pending:  # the previous step's metrics: it has finished
                bad_run = int(jax.device_get(pending[-1]["nonfinite_run"]))
            pending.append(m)
            if step == start + 1:
                jax.block_until_ready(m)
                logging.info("first step (compile + run) took %.1f s", time.perf_counter() - t_first)
                t_steady = time.perf_counter()
            if bad_run >= patience:  # back to the last good checkpoint with a lower learning rate
                state = nonfinite.recover(config, state, ckpt, abstract, fresh_state, mesh, step - 1, bad_run)
                step = int(jax.device_get(state.step))
                batches, report, pending, input_wait, bad_run = batches_from(step), progress(), [], 0.0, 0
                bar.n, t_steady = step, None  # steps/s would count the replayed steps
                bar.refresh()
                continue
            report(step)
            bar.update(1)
            if step % config.log_every == 0 or step == total:
                summary = _summarise(jax.device_get(pending))
                summary["input_wait_ms"] = 1000 * input_wait / len(pending)  # per step: > 0 means input-bound
                pending, input_wait = [], 0.0
                writer.write_scalars(step, summary)
                bar.set_postfix(loss=f"{summary['loss']:.4g}", psnr=f"{summary['psnr_rgb']:.2f}")
            previews(step, state=state)
            if step == total:
                save(step, force=True)
            elif not bad_run and ckpt.should_save(step):  # no periodic save in a run of non-finite steps
                save(step)
        bar.close()
        jax.block_until_ready(state)
        timing = {}
        if t_steady is not None and step > start + 1:  # steady state: after the first (compiling) step
            timing["train_steps_per_sec"] = (step - start - 1) / (time.perf_counter() - t_steady)

        ckpt.wait()  # the last checkpoint is on disk before anything else
        if stopped_by is not None:
            result = preemption.stopped(stopped_by, step, ckpt.directory)
        else:
            signals.immediate = True  # from here a signal stops at once: the final checkpoint is saved
            try:
                result = _final_evaluation(model, state, config, evaluator, writer, workdir, step, timing)
            except preemption.Preempted as e:
                result = preemption.stopped(e.signum, step, ckpt.directory)
        finished = True
        return result
    except preemption.Preempted as e:  # a second signal during training: no save
        ckpt.wait()
        newest = ckpt.latest_step()
        logging.warning("stopped at once by %s, without saving; the newest checkpoint is of step %s", e, newest)
        finished = True
        return {"step": newest or 0, "preempted": True, "signal": e.signum}
    finally:
        signals.restore()
        ckpt.close(quiet=not finished)  # after an error: do not raise a second one over it
        if writer is not None:
            writer.flush()
            writer.close()


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


def _write_text(path: str, text: str) -> None:
    try:
        fileio.write_text(path, text)
    except OSError as e:
        raise UserError(f"cannot write {path} ({e.strerror}); free disk space or choose another --workdir") from None


def _summarise(pending: list[dict]) -> dict:
    """Mean of each metric over the finite steps since the last log (NaN if none was)."""
    ok = [p for p in pending if not p.get("nonfinite")] or pending
    summary = {k: float(np.mean([p[k] for p in ok])) for k in pending[0]}
    summary["nonfinite"] = float(sum(float(p.get("nonfinite", 0)) for p in pending))  # skipped steps
    summary["nonfinite_run"] = float(pending[-1].get("nonfinite_run", 0))
    return summary


def _predictor(model, state, config):
    return evaluate.make_predictor(
        model,
        _local_copy(state.ema if state.ema is not None else state.params),
        num_frames=int(config.data.num_frames),
        batch_frames=int(config.eval.batch_frames),
    )


def _preview(model, state, config, evaluator, writer, step) -> None:
    """Image grids (LR / bicubic / SR / HR) and their Y-PSNR on a few held-out frames."""
    rows = evaluator.samples(_predictor(model, state, config))
    writer.write_images(step, {f"preview/{name}": img[None] for name, _, img in rows})


def _final_evaluation(model, state, config, evaluator, writer, workdir, step, timing: dict) -> dict:
    """The held-out evaluation: WORKDIR/eval/metrics.json, samples_step{step}.png, eval/* scalars."""
    predict = _predictor(model, state, config)
    t0 = time.time()
    result = evaluator.run(predict)
    result.update(
        step=step,
        crop_border=evaluator.crop_border,
        dataset=f"{config.data.name}/test",
        devices=jax.device_count(),
        **timing,
    )
    logging.info("held-out evaluation (%d frames) took %.1f s", result["num_frames"], time.time() - t0)
    out, figure = os.path.join(workdir, "eval"), f"samples_step{step}.png"
    what = "Y-PSNR / Y-SSIM" + (" / tOF (lower is better)" if "tof" in result else "")
    evaluator.report(
        result,
        out,
        predict=predict,
        csv=False,
        figure=figure,
        writer=writer,
        step=step,
        title=f"\nHeld-out {what} at step {step} (crop {evaluator.crop_border}):",
        footer=(
            f"\ncheckpoints: {checkpointing.checkpoint_dir(workdir)}\n"
            f"metrics:     {os.path.join(out, 'metrics.json')}\n"
            f"figure:      {os.path.join(out, figure)}\n"
            f"tensorboard: tensorboard --logdir {workdir}"
        ),
    )
    return result
