"""BasicVSR's time loops are loops (`nn.scan`): the traced program does not grow with T."""

import jax
import jax.numpy as jnp
import numpy as np

from vsr_jax import models


def _program_size(model, params, t: int, train: bool) -> int:
    x = jnp.zeros((1, t, 8, 8, 3), jnp.float32)
    return len(str(jax.make_jaxpr(lambda p, x: model.apply({"params": p}, x, train=train))(params, x)))


def test_inference_program_does_not_grow_with_clip_length():
    model = models.create_model("basicvsr", 4, {"num_feat": 4, "num_block": 1})
    abstract = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 2, 8, 8, 3)))["params"]
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda a: jnp.asarray(rng.normal(0, 0.2, a.shape), jnp.float32), abstract)
    sizes = [_program_size(model, params, t, train=False) for t in (3, 9)]
    assert abs(sizes[1] - sizes[0]) < 0.05 * sizes[0], sizes  # +0.9% (shapes); unrolled: +53%
    # the loops compute what the unrolled training pass does (train=True: the propagation
    # unrolled on a CPU, the reconstruction on all frames at once)
    x = jnp.asarray(rng.uniform(0, 1, (1, 5, 8, 8, 3)).astype(np.float32))
    infer, train = (jax.jit(lambda p, x, tr=tr: model.apply({"params": p}, x, train=tr)) for tr in (False, True))
    out = infer(params, x)
    assert out.shape == (1, 5, 32, 32, 3)
    assert float(jnp.max(jnp.abs(out - train(params, x)))) < 1e-5
    assert float(jnp.max(jnp.abs(out[:, 1:] - out[:, :1]))) > 1e-3  # not one frame repeated
