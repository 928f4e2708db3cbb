"""The discriminator side of a GAN: `Critic` (the network and how frames are fed to it),
what it judges in a step (`judged`) and the generator's adversarial terms."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from vsr_jax import losses
from vsr_jax.config_lib import estimates_flow
from vsr_jax.errors import ConfigError


def discriminator_features(config) -> tuple[int, ...]:
    """`gan.d_features` ((32, 64, 128)); () = the discriminator's own. ConfigError unless positive ints."""
    widths = tuple(config.gan.d_features)
    if not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths):
        raise ConfigError(f"gan.d_features must be positive widths like (32, 64, 128), got {widths!r}")
    return widths


def fm_on(config) -> bool:
    return float(config.gan.feature_matching_weight) > 0


def feature_matching_weights(config) -> tuple[float, ...]:
    """`gan.feature_matching_layer_weights`, one per D layer (() = TecoGAN's for 4 layers)."""
    n = len(discriminator_features(config) or (0,) * 4)  # spatio_temporal's own widths: 4 layers
    given = tuple(config.gan.feature_matching_layer_weights)
    if not all(isinstance(w, (int, float)) and not isinstance(w, bool) for w in given):
        raise ConfigError(f"gan.feature_matching_layer_weights must be numbers, got {given!r}")
    weights = tuple(float(w) for w in given) or losses.TECOGAN_LAYER_WEIGHTS
    if len(weights) != n:
        raise ConfigError(
            f"gan.feature_matching_layer_weights needs one weight per discriminator layer ({n}), got {len(weights)}"
            + ("" if given else ": TecoGAN's default is for 4 layers, set them")
        )
    return weights


class Critic:
    """The discriminator and how frames are fed to it: `critic(d_params, frames, lr, flows)` -> logits.

    frames (N, T, H, W, 3); lr (N, T, h, w, 3). `spatio_temporal` is TecoGAN's D_s,t: it sees
    the first 3·⌊T/3⌋ frames as triplets, each as 27 channels: the triplet motion-compensated
    (`flows` (N, 3·⌊T/3⌋, H, W, 2) from `discriminators.triplet_flows`: the outer frames
    warped onto the middle one; None = zero flow), its centre `gan.warp_crop` kept; the
    triplet itself; and the bicubic-upsampled LR triplet. The others see every frame on its
    own. `warps`: whether the training step passes the generator's flows.
    """

    def __init__(self, config):
        from vsr_jax.models import discriminators, layers

        self.name = config.gan.discriminator
        self.scale = int(config.data.scale)
        kwargs = {"dtype": config.model.get("dtype", "float32")}
        if config.gan.d_features:
            kwargs["features"] = discriminator_features(config)
        self.module = discriminators.create_discriminator(self.name, **kwargs)
        self._upsample = lambda x: layers.per_frame(lambda f: layers.upsample_bicubic(f, self.scale), x)
        self._compensate = discriminators.motion_compensate
        self.keep = float(config.gan.warp_crop)
        self.warps = self.name == "spatio_temporal" and estimates_flow(config)

    def _inputs(self, frames, lr, flows=None):
        if self.name != "spatio_temporal":
            return frames, None
        t = 3 * (frames.shape[1] // 3)
        x = frames[:, :t]
        return self._compensate(x, flows, self.keep), jnp.concatenate([x, self._upsample(lr[:, :t])], axis=-1)

    def init(self, rng, frames, lr):
        x, cond = self._inputs(frames, lr)
        return self.module.init(rng, x, cond=cond)["params"]

    def __call__(self, d_params, frames, lr, flows=None, features: bool = False):
        """Logits; with `features` (spatio_temporal only), (logits, D's per-layer activations)."""
        x, cond = self._inputs(frames, lr, flows)
        extra = {"return_features": True} if features else {}
        return self.module.apply({"params": d_params}, x, cond=cond, train=True, **extra)


def judged_by(model, critic: Critic, params, lr, hr, out, flows, scale: int):
    """What the critic judges in an adversarial step: (real, fake, LR, D_s,t flows or None).

    `out`, `flows`: the generator's output and LR flows (None unless it sows them) on `lr`, or
    with the ping-pong pass on its ping-pong sequence (2T−1 frames). Per-frame critics judge
    the T frames. D_s,t judges what TecoGAN's does: the whole ping-pong sequence when there is
    one (real and LR extended alike), motion-compensated with the generator's flows (the
    frame after each triplet's middle one needs the flow back to it: the ping-pong
    sequence's own, read backwards; without one, the model's flows on the reversed clip),
    gradient stopped as TecoGAN does (D trains neither the flow network nor the generator
    through the flows).
    """
    from vsr_jax.models import discriminators

    t = lr.shape[1]
    if critic.name != "spatio_temporal":
        return hr, out[:, :t], lr, None
    if out.shape[1] != t:  # the ping-pong sequence
        lr, hr = losses.pingpong_sequence(lr), losses.pingpong_sequence(hr)
    if not critic.warps:
        return hr, out, lr, None
    if out.shape[1] != t:
        back = jnp.flip(flows, axis=1)  # a ping-pong sequence is its own reverse
    else:
        _, inter = model.apply({"params": params}, jnp.flip(lr, axis=1), train=True, mutable=["intermediates"])
        back = jnp.flip(inter["intermediates"]["flow_to_prev"][0], axis=1)
    return hr, out, lr, jax.lax.stop_gradient(discriminators.triplet_flows(flows, back, scale))


def adversarial_terms(critic: Critic, d_params, judged, gan_kind: str, fm_weights) -> dict:
    """The generator's adversarial term and, with `fm_weights`, TecoGAN's layer loss on D's features."""
    real, fake, lr, flows = judged
    if fm_weights is None:
        real_logits = jax.lax.stop_gradient(critic(d_params, real, lr, flows))
        return {"adversarial": losses.g_loss(gan_kind, real_logits, critic(d_params, fake, lr, flows))}
    real_logits, real_feats = jax.lax.stop_gradient(critic(d_params, real, lr, flows, features=True))
    fake_logits, fake_feats = critic(d_params, fake, lr, flows, features=True)
    return {
        "adversarial": losses.g_loss(gan_kind, real_logits, fake_logits),
        "feature_matching": losses.feature_matching(real_feats, fake_feats, fm_weights),
    }


def make_discriminator_update(critic: Critic, d_tx, config):
    """The discriminator's part of a GAN step: (D's Net, what it judges, lr_scale) ->
    (Net after `gan.d_steps` updates, its metrics, whether every update was finite)."""
    gan_kind, d_steps, r1_gamma = config.gan.loss, int(config.gan.d_steps), float(config.gan.r1_gamma)

    def update(net, judged, lr_scale):
        real, fake, lr, flows = jax.lax.stop_gradient(judged)

        def objective(d_params):
            real_logits = critic(d_params, real, lr, flows)
            fake_logits = critic(d_params, fake, lr, flows)
            total = losses.d_loss(gan_kind, real_logits, fake_logits)
            if r1_gamma > 0:
                r1 = losses.r1_penalty(lambda x: critic(d_params, x, lr, flows), real)
                total = total + 0.5 * r1_gamma * r1
            return total, (jnp.mean(real_logits), jnp.mean(fake_logits))

        finite = jnp.ones((), bool)
        for _ in range(d_steps):
            (d_loss, (d_real, d_fake)), grads = jax.value_and_grad(objective, has_aux=True)(net.params)
            net = net.apply_gradients(grads, d_tx, lr_scale)
            finite = finite & jnp.isfinite(d_loss) & jnp.isfinite(optax.global_norm(grads))
        return net, {"loss_d": d_loss, "d_real_logit": d_real, "d_fake_logit": d_fake}, finite

    return update
