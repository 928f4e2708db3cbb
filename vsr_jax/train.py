"""Training: the TrainState, the one train-step builder, and `train_and_evaluate`.

The same code runs on one CPU, several GPUs or a TPU slice: parameters are replicated and
each global batch is split over the mesh axis 'data' (`vsr_jax.sharding`); the jitted
step donates the old state. Checkpoints (Orbax) are saved every `checkpoint_every`
steps, at the end, and on SIGTERM/SIGINT; running the same command again resumes from
the newest usable one and gives the same parameters as an uninterrupted run. A step with
a non-finite loss or gradients is skipped; a run of them sends the loop back to the last
good checkpoint with a lower learning rate (`config.nonfinite`). README: "Resuming and
preemption".
"""

from __future__ import annotations

import json
import os
import signal
import time

import jax
import ml_collections
import numpy as np
from absl import logging

from vsr_jax import checkpointing, config_lib, evaluate, fileio, resume, sharding
from vsr_jax.adversarial import Critic
from vsr_jax.data import pipeline
from vsr_jax.errors import UserError
from vsr_jax.nonfinite import TrainingDiverged
from vsr_jax.optimizers import make_optimizer
from vsr_jax.preemption import Preempted, StopSignals
from vsr_jax.train_state import (
    TrainState,
    abstract_train_state,
    create_train_state,
    from_fields,
    state_fields,
    with_weights,
)
from vsr_jax.train_step import build_perceptual, jit_train_step, make_train_step

# The old names, for vsr_jax/bench.py until it imports them from their modules.
build_model = config_lib.build_model
validate_config = config_lib.validate


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

    Returns the final held-out metrics (also written to WORKDIR/eval/metrics.json), or
    {"step", "preempted": True, "signal"} when a stop signal ended the run early (its
    checkpoint saved: the same call resumes it).
    """
    from clu import metric_writers

    config_lib.validate(config)
    # Data first: a missing or corrupt dataset fails before anything is written.
    train_source = pipeline.make_source(config.data, "train")
    pipeline.ExampleMaker(train_source, config.data, config.seed)  # raises if the split has no windows
    eval_pairs = pipeline.load_clip_pairs(config.data, "test", int(config.eval.max_clips))
    perceptual, frozen = build_perceptual(config)  # a missing VGG file fails before anything is written
    workdir = os.path.abspath(workdir)
    _check_workdir(workdir)
    is_chief = jax.process_index() == 0

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
    signals = StopSignals(multi_process=jax.process_count() > 1)
    writer, finished = None, False
    try:
        found, weights = resume.restore(ckpt, config, workdir, abstract, config_dict, metadata, weights)

        def fresh_state():
            return with_weights(create_train_state(config, model, tx, mesh, critic, d_tx), weights, mesh)

        state = from_fields(found[0], abstract, mesh) if found else fresh_state()
        start_step = int(jax.device_get(state.step))
        _log_start(mesh, config, start_step, num_params)
        if found:
            resume.log_differences(found, config_dict, metadata)
        if is_chief:
            _write_text(os.path.join(workdir, "config.json"), json.dumps(config_dict, indent=2))
        writer = metric_writers.create_default_writer(workdir, just_logging=not is_chief)
        if start_step == 0:
            writer.write_hparams(config_lib.flatten(config_dict))
        step_fn = make_train_step(model, tx, config, critic=critic, d_tx=d_tx, perceptual=perceptual)
        loop = _Loop(
            config=config,
            state=state,
            train_step=jit_train_step(step_fn, mesh, frozen),
            fresh_state=fresh_state,
            abstract=abstract,
            mesh=mesh,
            ckpt=ckpt,
            writer=writer,
            source=train_source,
            signals=signals,
            config_dict=config_dict,
            metadata=metadata,
            preview=lambda state, step: _preview(model, state, config, eval_pairs, writer, step),
        )
        try:
            state, step, timing = loop.run()
        except Preempted as e:  # a second signal: no save
            ckpt.wait()
            newest = ckpt.latest_step()
            logging.warning("stopped at once by %s, without saving; the newest checkpoint is of step %s", e, newest)
            finished = True
            return {"step": newest or 0, "preempted": True, "signal": e.signum}
        ckpt.wait()  # the last checkpoint is on disk before anything else
        if loop.stopped_by is not None:
            result = _stopped(loop.stopped_by, step, workdir)
        else:
            signals.immediate = True  # from here a signal stops at once: the final checkpoint is saved
            try:
                result = _final_evaluation(model, state, config, eval_pairs, writer, workdir, step, timing)
            except Preempted as e:
                result = _stopped(e.signum, step, workdir)
        finished = True
        return result
    finally:
        signals.restore()
        ckpt.close(quiet=not finished)  # after an error: do not raise a second one over it
        if writer is not None:
            writer.flush()
            writer.close()


def _stopped(signum: int, step: int, workdir: str) -> dict:
    name = signal.Signals(signum).name
    logging.warning(
        "stopped by %s at step %d; checkpoint saved in %s", name, step, checkpointing.checkpoint_dir(workdir)
    )
    logging.warning("to resume, run the same command again (same --workdir): it continues from step %d", step)
    return {"step": step, "preempted": True, "signal": int(signum)}


def _write_text(path: str, text: str) -> None:
    try:
        fileio.write_text(path, text)
    except OSError as e:
        raise UserError(f"cannot write {path} ({e.strerror}); free disk space or choose another --workdir") from None


class _Loop:
    """The training loop: steps, logging, previews, checkpoints, stop signals, and the
    non-finite guard's way back to the last good checkpoint."""

    def __init__(
        self,
        *,
        config,
        state,
        train_step,
        fresh_state,
        abstract,
        mesh,
        ckpt,
        writer,
        source,
        signals,
        config_dict,
        metadata,
        preview,
    ):
        self.config, self.state, self.train_step = config, state, train_step
        self.fresh_state, self.abstract, self.mesh = fresh_state, abstract, mesh
        self.ckpt, self.writer, self.source, self.signals = ckpt, writer, source, signals
        self.config_dict, self.metadata, self.preview = config_dict, metadata, preview
        self.stopped_by: int | None = None
        self.multi_process = jax.process_count() > 1

    def _batches(self, step: int):
        ds = pipeline.make_train_dataset(
            self.config,
            source=self.source,
            start_step=step,
            process_index=jax.process_index(),
            process_count=jax.process_count(),
        )
        return ds.as_numpy_iterator()

    def _save(self, step: int, *, force: bool, bad_run: int = 0) -> None:
        if bad_run and not force:
            return  # no periodic checkpoint in the middle of non-finite steps
        if force or step % self.ckpt.save_every == 0:
            run = int(jax.device_get(self.state.guard["bad_run"]))
            self.ckpt.save(step, self.state, self.config_dict, {**self.metadata, "nonfinite_run": run}, force=True)

    def _preempted(self, step: int) -> bool:
        if self.signals.signum is None and self.multi_process and self.ckpt.reached_preemption(step):
            self.signals.signum = int(signal.SIGTERM)
        return self.signals.signum is not None

    def run(self) -> tuple[TrainState, int, dict]:
        from clu import periodic_actions
        from tqdm import tqdm

        config, writer = self.config, self.writer
        total = int(config.total_steps)
        start = step = int(jax.device_get(self.state.step))
        timing: dict = {}
        if step >= total:
            return self.state, step, timing
        is_chief = jax.process_index() == 0
        batches = self._batches(step)
        progress = lambda: periodic_actions.ReportProgress(  # noqa: E731 - a new one after going back
            num_train_steps=total, writer=writer, every_secs=None, every_steps=config.log_every
        )
        report = progress()
        bar = tqdm(total=total, initial=step, desc="train", unit="step", disable=None if is_chief else True)
        pending, input_wait, bad_run = [], 0.0, 0
        t_first = time.time()
        t_steady = None
        while step < total:
            if self._preempted(step):  # before the first step too: a signal during start-up
                self._save(step, force=True)
                self.stopped_by = self.signals.signum
                break
            t_wait = time.perf_counter()
            local = next(batches)
            input_wait += time.perf_counter() - t_wait
            self.state, m = self.train_step(self.state, sharding.global_batch(local, self.mesh))
            step += 1
            if pending:  # keep one step in flight, so progress and ETA count finished steps
                jax.block_until_ready(pending[-1])
                bad_run = int(jax.device_get(pending[-1]["nonfinite_run"]))
            pending.append(m)
            if step == start + 1:
                jax.block_until_ready(m)
                logging.info("first step (compile + run) took %.1f s", time.time() - t_first)
                t_steady = time.time()
            if bad_run >= int(config.nonfinite.patience):
                step = self._recover(step - 1, bad_run)
                batches, pending, input_wait, bad_run = self._batches(step), [], 0.0, 0
                report = progress()
                bar.n = step
                bar.refresh()
                t_steady = None  # the steps/s below would count the replayed steps
                continue
            report(step)
            bar.update(1)
            if step % config.log_every == 0 or step == total:
                summary = _summarise(jax.device_get(pending))
                summary["input_wait_ms"] = 1000 * input_wait / len(pending)  # per step: > 0 means input-bound
                pending, input_wait = [], 0.0
                writer.write_scalars(step, summary)
                bar.set_postfix(loss=f"{summary['loss']:.4g}", psnr=f"{summary['psnr_rgb']:.2f}")
            if step % config.eval_every == 0 and step < total:
                self.preview(self.state, step)
            self._save(step, force=step == total, bad_run=bad_run)
        bar.close()
        jax.block_until_ready(self.state)
        if t_steady is not None and step > start + 1:  # steady state: after the first (compiling) step
            timing["train_steps_per_sec"] = (step - start - 1) / (time.time() - t_steady)
        return self.state, step, timing

    def _recover(self, bad_step: int, bad_run: int) -> int:
        """After `nonfinite.patience` skipped steps in a row: back to the newest checkpoint
        saved outside such a run (or to the initial state) with the learning rate ×
        `nonfinite.lr_factor`; or TrainingDiverged. Returns the step to continue from."""
        nf = self.config.nonfinite
        guard = jax.device_get(self.state.guard)
        restores = int(guard["restores"])
        what = (
            f"{bad_run} steps in a row up to step {bad_step} had a non-finite loss or gradients "
            f"(skipped; {int(guard['bad_total'])} in all)"
        )
        if nf.action == "stop" or restores >= int(nf.max_restores):
            after = f" after {restores} restores with lower learning rates" if restores else ""
            raise TrainingDiverged(
                f"training diverged: {what}{after}; lower --config.learning_rate, set --config.grad_clip_norm, "
                "or check the data (nonfinite.* in the config sets this policy)"
            )
        self.ckpt.wait()
        found = self.ckpt.restore_newest(
            state_fields(self.abstract), accept=lambda step, meta: step <= bad_step and not meta.get("nonfinite_run")
        )
        state = from_fields(found[0], self.abstract, self.mesh) if found else self.fresh_state()
        lr_scale = float(guard["lr_scale"]) * float(nf.lr_factor)
        new = {
            "lr_scale": np.float32(lr_scale),
            "bad_run": np.int32(0),
            "bad_total": np.int32(guard["bad_total"]),
            "restores": np.int32(restores + 1),
        }
        self.state = state.replace(guard=jax.device_put(new, sharding.replicated(self.mesh)))
        step = int(jax.device_get(self.state.step))
        logging.warning(
            "%s: went back to %s; learning rate now x%g of the schedule (restore %d of at most %d)",
            what,
            f"the checkpoint of step {step}" if found else "the initial state (no earlier checkpoint)",
            lr_scale,
            restores + 1,
            int(nf.max_restores),
        )
        return step


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


def _preview(model, state, config, pairs, writer, step) -> None:
    """Image grids (LR / bicubic / SR / HR) and their Y-PSNR on a few held-out frames."""
    predict = _predictor(model, state, config)
    rows = evaluate.preview_rows(predict, pairs, scale=int(config.data.scale))
    writer.write_images(step, {f"preview/{name}": img[None] for name, _, img in rows})


def _final_evaluation(model, state, config, pairs, writer, workdir, step, timing: dict) -> dict:
    predict = _predictor(model, state, config)
    t0 = time.time()
    result = evaluate.evaluate_clips(
        predict,
        pairs,
        scale=int(config.data.scale),
        crop_border=config_lib.crop_border(config),
        frame_stride=int(config.eval.frame_stride),
    )
    result.update(
        step=step,
        crop_border=config_lib.crop_border(config),
        dataset=f"{config.data.name}/test",
        devices=jax.device_count(),
        **timing,
    )
    logging.info("held-out evaluation (%d frames) took %.1f s", result["num_frames"], time.time() - t0)
    keys = [k for k in result if isinstance(result[k], float)]
    writer.write_scalars(step, {f"eval/{k}": result[k] for k in keys if k in result})
    if jax.process_index() == 0:
        out = os.path.join(workdir, "eval")
        os.makedirs(out, exist_ok=True)
        evaluate.write_json(result, os.path.join(out, "metrics.json"))
        figure = os.path.join(out, f"samples_step{step}.png")
        evaluate.save_figure(evaluate.preview_rows(predict, pairs, scale=int(config.data.scale)), figure)
        table = evaluate.format_table(result)
        what = "Y-PSNR / Y-SSIM" + (" / tOF (lower is better)" if "tof" in result else "")
        print(f"\nHeld-out {what} at step {step} (crop {result['crop_border']}):\n{table}\n")
        print(f"checkpoints: {checkpointing.checkpoint_dir(workdir)}")
        print(f"metrics:     {os.path.join(out, 'metrics.json')}")
        print(f"figure:      {figure}")
        print(f"tensorboard: tensorboard --logdir {workdir}")
    return result
