"""`edvr` equals BasicSR 1.4.2's EDVR on the same weights, and its exported parts
(`DCNv2Pack`, `PCDAlignment`, `TSAFusion`, which IconVSR reuses) keep the authors' names."""

import jax
import jax.numpy as jnp
import numpy as np

import vsr_jax.models.edvr as edvr  # noqa: F401  (registers "edvr")
from vsr_jax.models import layers


def test_dcnv2pack_with_zero_offset_conv_is_a_half_masked_conv():
    """A fresh DCNv2Pack (conv_offset zero, as the authors' init) samples the plain grid with
    mask sigmoid(0) = 1/2: half the conv of `x` plus the bias; its params are the authors'."""
    x = jax.random.normal(jax.random.key(0), (2, 7, 9, 8))
    feat = jax.random.normal(jax.random.key(1), (2, 7, 9, 8))
    dcn = edvr.DCNv2Pack(6, deformable_groups=2)
    params = dcn.init(jax.random.key(2), x, feat)["params"]
    assert jax.tree_util.tree_map(jnp.shape, params) == {
        "kernel": (3, 3, 8, 6),
        "bias": (6,),
        "conv_offset": {"kernel": (3, 3, 8, 54), "bias": (54,)},
    }
    params["bias"] = jnp.arange(6.0)
    want = 0.5 * layers.conv2d(x, params["kernel"]) + params["bias"]
    np.testing.assert_allclose(dcn.apply({"params": params}, x, feat), want, atol=1e-5)


def test_pcd_and_tsa_take_the_documented_shapes_and_names():
    n, c, h, w = 2, 8, 8, 12
    keys = jax.random.split(jax.random.key(0), 6)
    nbr = [jax.random.normal(keys[i], (n, h >> i, w >> i, c)) for i in range(3)]
    ref = [jax.random.normal(keys[3 + i], (n, h >> i, w >> i, c)) for i in range(3)]
    pcd = edvr.PCDAlignment(c, deformable_groups=2)
    params = pcd.init(jax.random.key(1), nbr, ref)["params"]
    assert sorted(params) == [
        "cas_dcnpack", "cas_offset_conv1", "cas_offset_conv2", "dcn_pack",
        "feat_conv", "offset_conv1", "offset_conv2", "offset_conv3",
    ]  # fmt: skip
    assert sorted(params["offset_conv3"]) == ["l1", "l2"] and sorted(params["dcn_pack"]) == ["l1", "l2", "l3"]
    assert pcd.apply({"params": params}, nbr, ref).shape == (n, h, w, c)
    tsa = edvr.TSAFusion(c, num_frame=3, center_frame_idx=1)
    aligned = jax.random.normal(keys[0], (n, 3, h, w, c))
    params = tsa.init(jax.random.key(1), aligned)["params"]
    assert params["feat_fusion"]["kernel"].shape == (1, 1, 3 * c, c)
    assert tsa.apply({"params": params}, aligned).shape == (n, h, w, c)
