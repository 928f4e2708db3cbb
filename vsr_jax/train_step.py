"""The one train step of every model family (a GAN adds its discriminator update to it),
its loss terms, and its compilation over the mesh."""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import optax
from absl import logging

from vsr_jax import config_lib, losses, metrics, sharding
from vsr_jax.adversarial import (
    Critic,
    adversarial_terms,
    feature_matching_weights,
    fm_on,
    judged_by,
    make_discriminator_update,
)
from vsr_jax.errors import ConfigError
from vsr_jax.nonfinite import skip_unless
from vsr_jax.optimizers import make_schedule
from vsr_jax.train_state import TrainState


def build_perceptual(config):
    """(perceptual(frozen, sr, hr) -> scalar, VGG params) for `loss.perceptual_weight` > 0,
    else (None, None). Raises UserError naming the file to get when the weights are missing."""
    lc = config.loss
    if float(lc.perceptual_weight) <= 0:
        return None, None
    from vsr_jax import vgg_weights
    from vsr_jax.models.vgg import VGG_WIDTHS, VGGFeatures

    weights = config_lib.perceptual_layers(lc)  # {layer: weight}; raises when they do not fit
    names = tuple(weights)
    depth = int(lc.vgg_depth)
    if lc.vgg_weights:
        path = os.path.expanduser(lc.vgg_weights)  # published widths: a narrower file is an error
        params, input_mode = vgg_weights.load_vgg_params(path, depth, VGG_WIDTHS)
    elif lc.allow_random_vgg:
        logging.warning("perceptual loss on a RANDOM VGG%d (loss.allow_random_vgg=True): only for tests", depth)
        params, input_mode = vgg_weights.random_vgg_params(depth, jax.random.key(0)), "torch"
    else:
        raise ConfigError(
            f"loss.perceptual_weight > 0 needs VGG{depth} weights: --config.loss.vgg_weights=FILE with "
            f"vgg{depth}_weights_tf_dim_ordering_tf_kernels_notop.h5 (Keras) or a torchvision .pth "
            "(see README: VGG weights)"
        )
    module = VGGFeatures(depth=depth, layers=names, input_mode=input_mode, dtype=config.model.get("dtype", "float32"))
    criterion = lc.perceptual_criterion

    def perceptual(frozen, sr, hr):
        flat = lambda x: x.reshape((-1,) + x.shape[-3:])  # noqa: E731 - (N,T,H,W,3) -> (N·T,H,W,3)
        feats = module.apply({"params": frozen}, jnp.concatenate([flat(sr), flat(hr)]))
        half = flat(sr).shape[0]
        f_sr = {k: v[:half] for k, v in feats.items()}
        f_hr = {k: jax.lax.stop_gradient(v[half:]) for k, v in feats.items()}
        return losses.feature_distance(f_sr, f_hr, weights, criterion)

    return perceptual, params


def make_train_step(model, tx, config, *, critic: Critic | None = None, d_tx=None, perceptual=None):
    """The one train step of every model family: (state, batch, frozen, adversarial) -> (state, metrics).

    `batch` is {"lr": (B,T,h,w,3), "hr": (B,T,H,W,3)}; `frozen` holds fixed networks' params
    (VGG for the perceptual loss) so they are arguments of the compiled step, not constants.
    The generator minimises Σ weight · term over the configured terms: pixel; flow (FRVSR's
    warp loss on the model's LR flows, models that `sow` `flow_to_prev`); perceptual
    (`perceptual(frozen, sr, hr)`); ping-pong (the clip is played forward then backward
    through the model, TecoGAN); temporal (SR changes between warped neighbours match HR's);
    adversarial, and with `gan.feature_matching_weight` TecoGAN's layer loss on D's features
    (what D judges: `adversarial.judged_by`). `adversarial` (static) is False during the
    first `gan.pretrain_steps` steps, a warm-up on pixel and flow only (FRVSR/SRResNet
    pretraining): the other terms are then not computed at all (logged as 0), nor is the
    discriminator; `jit_train_step` compiles the two phases as two programs. With a `critic`
    the same step then makes `gan.d_steps` discriminator updates on the generator's output.
    EMA of the generator's params is updated every step when `ema_decay` > 0.
    """
    pixel = losses.pixel_loss(config.loss)
    weights = {
        "pixel": float(config.loss.pixel_weight),
        "flow": float(config.loss.flow_weight),
        "perceptual": float(config.loss.perceptual_weight),
        "pingpong": float(config.loss.pingpong_weight),
        "temporal": float(config.loss.temporal_weight),
        "adversarial": float(config.gan.weight),
        "feature_matching": float(config.gan.feature_matching_weight),
    }
    fm_weights = feature_matching_weights(config) if critic is not None and fm_on(config) else None
    update_discriminator = make_discriminator_update(critic, d_tx, config) if critic is not None else None
    schedule = make_schedule(config)
    ema_decay = float(config.ema_decay)
    gan_kind = config.gan.loss
    scale_factor = int(config.data.scale)
    needs_flow = weights["flow"] > 0 or weights["temporal"] > 0 or (critic is not None and critic.warps)
    center_only = config.loss.frames == "center"

    def generate(params, lr, pingpong: bool):
        """(output (N,T,H,W,3), or (N,2T−1,…) of the ping-pong sequence, or (N,1,…) of the middle
        frame with loss.frames=center; ping-pong loss (0 when not run); LR flows to the previous
        frame of the same frames, or None)."""
        x = losses.pingpong_sequence(lr) if pingpong else lr
        if center_only:
            middle = lr.shape[1] // 2
            if getattr(model, "accepts_output_frames", False):  # restores only that frame (EDVR)
                out = model.apply({"params": params}, x, train=True, output_frames=(middle,))
            else:
                out = model.apply({"params": params}, x, train=True)[:, middle : middle + 1]
            return out, jnp.zeros((), jnp.float32), None
        if needs_flow:
            out, inter = model.apply({"params": params}, x, train=True, mutable=["intermediates"])
            flows = inter["intermediates"]["flow_to_prev"][0]
        else:
            out, flows = model.apply({"params": params}, x, train=True), None
        return out, (losses.pingpong_loss(out) if pingpong else jnp.zeros((), jnp.float32)), flows

    def loss_terms(params, d_params, lr, hr, frozen, adversarial: bool):
        """({term: value} of the generator's loss, (sr, target), what D judges or None)."""
        zero = jnp.zeros((), jnp.float32)
        # the ping-pong pass plays the clip forward then backward (~2x the generator's work)
        out, pingpong, all_flows = generate(params, lr, adversarial and weights["pingpong"] > 0)
        t = lr.shape[1]
        sr, flows = out[:, :t], None if all_flows is None else all_flows[:, :t]
        target = hr[:, t // 2 : t // 2 + 1] if center_only else hr
        terms = {"pixel": pixel(sr, target)}
        if weights["flow"] > 0:
            terms["flow"] = losses.flow_warp_loss(lr, flows)
        if perceptual is not None and weights["perceptual"] > 0:
            terms["perceptual"] = perceptual(frozen, sr, target) if adversarial else zero
        if weights["pingpong"] > 0:
            terms["pingpong"] = pingpong
        if weights["temporal"] > 0:
            hr_flows = jax.lax.stop_gradient(losses.clip_flows_to_hr(flows, scale_factor))
            terms["temporal"] = losses.temporal_consistency(sr, hr, hr_flows) if adversarial else zero
        judged = None  # what D judges this step: (real, fake, lr, flows)
        if critic is not None:
            terms.update(adversarial=zero, **({} if fm_weights is None else {"feature_matching": zero}))
            if adversarial:
                judged = judged_by(model, critic, params, lr, hr, out, all_flows, scale_factor)
                terms.update(adversarial_terms(critic, d_params, judged, gan_kind, fm_weights))
        return terms, (sr, target), judged

    def step(state: TrainState, batch, frozen=None, adversarial: bool = True):
        """One step; `adversarial` (static, a separate program per value) is False during
        the warm-up: only pixel and flow are computed and D is left alone. (Two programs
        rather than a `lax.cond`: XLA:CPU runs convolution gradients inside a conditional
        much more slowly, as inside a loop.)"""
        lr, hr = batch["lr"], batch["hr"]

        def objective(params):
            terms, outputs, judged = loss_terms(params, state.d_params, lr, hr, frozen, adversarial)
            total = sum(jnp.asarray(weights[k], jnp.float32) * v for k, v in terms.items())
            return total, (terms, outputs, judged)

        lr_scale = state.guard.lr_scale
        (loss, (terms, (sr, target), judged)), grads = jax.value_and_grad(objective, has_aux=True)(state.params)
        new = state.replace(step=state.step + 1, generator=state.generator.apply_gradients(grads, tx, lr_scale))
        if state.ema is not None:
            new = new.replace(ema=jax.tree.map(lambda e, p: ema_decay * e + (1 - ema_decay) * p, state.ema, new.params))
        grad_norm = optax.global_norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        out = {
            "loss": loss,
            **{f"loss_{k}": v for k, v in terms.items()},
            "psnr_rgb": jnp.mean(metrics.psnr(jnp.clip(sr, 0, 1), target, y_channel=False)),
            "grad_norm": grad_norm,
            "learning_rate": schedule(state.step) * lr_scale,
        }
        if critic is not None:
            zero = jnp.zeros((), jnp.float32)
            d_metrics = {"loss_d": zero, "d_real_logit": zero, "d_fake_logit": zero}  # the warm-up: D not run
            if adversarial:
                discriminator, d_metrics, d_finite = update_discriminator(state.discriminator, judged, lr_scale)
                new, finite = new.replace(discriminator=discriminator), finite & d_finite
            out.update(d_metrics)
        new = skip_unless(finite, new, state)
        out.update(nonfinite=(~finite).astype(jnp.float32), nonfinite_run=new.guard.bad_run)
        return new, out

    return step


def jit_train_step(step_fn, mesh, frozen=None, *, pretrain_steps: int = 0):
    """Compiles `step_fn` over `mesh` (state replicated and donated, batch split) and binds
    the fixed networks' params `frozen`: returns (state, batch) -> (state, metrics).

    With a warm-up (`pretrain_steps` > 0, a GAN's `gan.pretrain_steps`) the step is compiled
    once per phase; the phase is read from `state.step` (one scalar fetched per step then)."""
    rep, data = sharding.replicated(mesh), sharding.batch_sharded(mesh)
    jitted = jax.jit(
        step_fn,
        in_shardings=(rep, data, rep),
        out_shardings=(rep, rep),
        donate_argnums=(0,),
        static_argnums=(3,),  # adversarial
    )
    frozen = jax.device_put(frozen, rep) if frozen is not None else None
    pretrain = int(pretrain_steps)

    def run(state, batch):
        adversarial = pretrain <= 0 or int(jax.device_get(state.step)) >= pretrain
        return jitted(state, batch, frozen, adversarial)

    run.lower = lambda state, batch, adversarial=True: jitted.lower(
        state, batch, frozen, adversarial
    )  # for cost analysis
    return run
