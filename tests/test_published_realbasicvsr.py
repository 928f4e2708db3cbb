"""`realbasicvsr` equals MMagic 1.2.0's RealBasicVSRNet, `basicvsr` equals MMagic's
BasicVSRNet, and MMagic's checkpoint layout imports (`vsr_jax.pretrained.mmagic`).

The fixture (tests/data/published/make_realbasicvsr.py, run with MMagic's own modules)
holds clips, MMagic's cleaned frames at three ``dynamic_refine_thres`` (1, 2 and 3 cleaning
passes), every third row and column of its ×4 outputs and their per-frame means; the
weights, in MMagic's names and checkpoint layout (``generator.`` / ``generator_ema.`` /
``discriminator.``), are rebuilt here with NumPy by the script's recipe and checked against
its checksums. They go through the importer as an .npz, as a user's file would. No torch.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests import published_helpers as ph
from vsr_jax import checkpointing, models
from vsr_jax import cli as vsr_cli
from vsr_jax.errors import UserError
from vsr_jax.pretrained import __main__ as cli
from vsr_jax.pretrained import convert, importer, mmagic, pth

recipe = ph.recipe("realbasicvsr")
NARROW = {
    "mid_channels": recipe.MID,
    "num_propagation_blocks": recipe.PROP_BLOCKS,
    "num_cleaning_blocks": recipe.CLEAN_BLOCKS,
}


@pytest.fixture(scope="module")
def ref():
    return ph.fixture("realbasicvsr")


@pytest.fixture(scope="module")
def checkpoint(ref):
    sd = recipe.checkpoint()
    np.testing.assert_allclose(recipe.make_spynet.checksums(sd), ref["checkpoint_checksums"], rtol=1e-12)
    return sd


@pytest.fixture(scope="module")
def imported(checkpoint, tmp_path_factory):
    """importer.prepare of the MMagic checkpoint written as an .npz."""
    path = tmp_path_factory.mktemp("mmagic") / "realbasicvsr_mmagic.npz"
    np.savez(path, **checkpoint)
    return importer.prepare(str(path))


def _frames(ref, key):
    return ref[key].astype(np.float32) / np.float32(255)


def _compare(out, ref, tag):
    s = recipe.STRIDE
    diff = float(np.max(np.abs(out[:, :, ::s, ::s] - ref[f"{tag}_output_strided"])))
    mean_diff = float(np.max(np.abs(out.astype(np.float64).mean(axis=(2, 3)) - ref[f"{tag}_output_mean"])))
    return diff, mean_diff


def test_mmagic_checkpoint_is_recognised_and_its_ema_generator_taken(imported, checkpoint):
    spec, config, params = imported
    assert (spec.arch, spec.scale, spec.kwargs) == ("realbasicvsr", 4, NARROW)
    assert spec.source == "MMagic module names, generator_ema (EMA)"
    assert config.model.name == "realbasicvsr" and int(config.data.num_frames) == 7
    ema = {k[len("generator_ema.") :]: v for k, v in checkpoint.items() if k.startswith("generator_ema.")}
    gen = {k[len("generator.") :]: v for k, v in checkpoint.items() if k.startswith("generator.")}
    kernel = params["image_cleaning_1"]["kernel"]
    np.testing.assert_array_equal(kernel, ema["image_cleaning.1.weight"].transpose(2, 3, 1, 0))
    assert np.abs(kernel - gen["image_cleaning.1.weight"].transpose(2, 3, 1, 0)).max() > 0.1
    # MMagic's SPyNet (ConvModule index k) lands on BasicSR's Sequential index 2k
    np.testing.assert_array_equal(
        params["basicvsr"]["spynet"]["basic_module_5"]["basic_module_8"]["bias"],
        ema["basicvsr.spynet.basic_module.5.basic_module.4.conv.bias"],
    )
    np.testing.assert_array_equal(params["basicvsr"]["upconv2"]["bias"], ema["basicvsr.upsample2.upsample_conv.bias"])


def test_cleaning_loop_equals_mmagic_at_each_threshold(imported, ref):
    """1, 2 and 3 passes: MMagic's thresholds on its 0-255 scale, its cleaned frames."""
    _, _, params = imported
    lr = _frames(ref, "rbv_frames")
    assert list(ref["rbv_passes"]) == [1, 2, 3]
    diffs = []
    for thres, want in zip(ref["rbv_thres"], ref["rbv_cleaned"], strict=True):
        model = models.create_model("realbasicvsr", 4, {**NARROW, "dynamic_refine_thres": float(thres)})
        out = jax.jit(lambda p, x, m=model: m.apply({"params": p}, x, method="cleaned"))(params, lr)
        diffs.append(float(np.max(np.abs(np.asarray(out) - want))))
    print(f"realbasicvsr cleaning (1/2/3 passes): max|diff| {', '.join(f'{d:.1e}' for d in diffs)}")
    assert max(diffs) <= 1e-5
    # the passes differ: a wrong count would not pass
    assert np.abs(ref["rbv_cleaned"][1] - ref["rbv_cleaned"][0]).max() > 0.05


def test_realbasicvsr_equals_mmagic(imported, ref):
    _, _, params = imported
    thres = float(ref["rbv_thres"][1])  # two cleaning passes
    model = models.create_model("realbasicvsr", 4, {**NARROW, "dynamic_refine_thres": thres})
    lr = _frames(ref, "rbv_frames")  # (2, 3, 11, 13, 3): SPyNet resizes to 32x32
    out = np.asarray(jax.jit(model.apply)({"params": params}, lr))
    n, t, h, w, _ = lr.shape
    assert out.shape == (n, t, 4 * h, 4 * w, 3)
    diff, mean_diff = _compare(out, ref, "rbv")
    print(f"realbasicvsr x4: max|diff| {diff:.2e} (every 3rd row/column), per-frame mean {mean_diff:.2e}")
    assert diff <= 1e-4 and mean_diff <= 1e-5
    count = sum(int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(params))
    assert count == int(ref["rbv_param_count"])


def _mmagic_basicvsr_file(tmp_path, ref):
    """A BasicVSR checkpoint in MMagic's layout (no EMA: ``generator.*`` and MMagic's
    ``step_counter``) as an .npz, and importer.prepare of it."""
    sd = recipe.basicvsr_state_dict()
    np.testing.assert_allclose(recipe.make_spynet.checksums(sd), ref["bvsr_checksums"], rtol=1e-12)
    path = tmp_path / "basicvsr_mmagic.npz"
    np.savez(path, step_counter=np.zeros(1, np.float32), **{f"generator.{k}": v for k, v in sd.items()})
    return importer.prepare(str(path))


def test_mmagic_basicvsrnet_file_imports_as_basicvsr(tmp_path, ref):
    """Through `import_weights`: the run's metadata says which weights of the file it holds."""
    sd = recipe.basicvsr_state_dict()
    path = tmp_path / "basicvsr_mmagic.npz"
    np.savez(path, step_counter=np.zeros(1, np.float32), **{f"generator.{k}": v for k, v in sd.items()})
    spec, params = importer.import_weights(str(path), str(tmp_path / "run"))
    assert (spec.arch, spec.kwargs) == ("basicvsr", {"num_feat": recipe.MID, "num_block": recipe.PROP_BLOCKS})
    assert params["backward_trunk"]["main_2_1"]["conv2"]["kernel"].shape == (3, 3, recipe.MID, recipe.MID)
    meta = checkpointing.Checkpointer(str(tmp_path / "run"), save_every=1, async_save=False)
    try:
        source = meta.read_json(0, "metadata")["imported_from"]
    finally:
        meta.close()
    assert source["arch"] == "basicvsr"
    assert source["weights"] == "MMagic module names, generator (no EMA in the file)"


@pytest.mark.slow  # ~7 s; MMagic's BasicVSRNet names and computation are also in test_realbasicvsr_equals_mmagic
def test_mmagic_basicvsrnet_equals_mmagic_on_mirror_extended_clips(tmp_path, ref):
    """MMagic's BasicVSRNet flips its backward flows for a mirror-extended clip: the same output."""
    spec, _, params = _mmagic_basicvsr_file(tmp_path, ref)
    model = models.create_model("basicvsr", 4, spec.kwargs)
    lr = _frames(ref, "bvsr_frames")  # (2, 4, 13, 11, 3)
    np.testing.assert_array_equal(lr, lr[:, ::-1])
    out = np.asarray(jax.jit(model.apply)({"params": params}, lr))
    diff, mean_diff = _compare(out, ref, "bvsr")
    print(f"basicvsr (MMagic BasicVSRNet) x4: max|diff| {diff:.2e}, per-frame mean {mean_diff:.2e}")
    assert diff <= 1e-4 and mean_diff <= 1e-5


def test_published_sizes_have_mmagics_parameter_counts(ref):
    def count(name, kwargs):
        model = models.create_model(name, 4, kwargs)
        return sum(
            int(np.prod(a.shape)) for a in jax.tree_util.tree_leaves(ph.abstract_params(model.init, (1, 1, 16, 16, 3)))
        )

    # realbasicvsr_c64b20-1x30x8_8xb1-lr5e-5-150k_reds: mid_channels 64, 20 + 20 blocks (the defaults)
    assert count("realbasicvsr", {}) == int(ref["rbv_param_count_published"])
    # basicvsr_reds4 / vimeo90k_bi / _bd: BasicVSRNet(64, 30), the same count as BasicSR's
    # (our basicvsr at that size has it: test_published_basicvsr)
    assert int(ref["bvsr_param_count_published"]) == 6_291_311


def test_key_mapping():
    assert (
        mmagic.rename("spynet.basic_module.3.basic_module.2.conv.weight")
        == "spynet.basic_module.3.basic_module.4.weight"
    )
    assert (
        mmagic.rename("basicvsr.backward_resblocks.main.2.7.conv1.bias")
        == "basicvsr.backward_trunk.main.2.7.conv1.bias"
    )
    assert mmagic.rename("forward_resblocks.main.0.weight") == "forward_trunk.main.0.weight"
    assert mmagic.rename("upsample1.upsample_conv.weight") == "upconv1.weight"
    assert mmagic.rename("basicvsr.upsample2.upsample_conv.bias") == "basicvsr.upconv2.bias"
    for same in ("image_cleaning.0.main.2.1.conv2.weight", "fusion.bias", "conv_hr.weight", "spynet.mean"):
        assert mmagic.rename(same) == same
    # a whole RealBasicVSRNet state_dict maps onto our model's params exactly
    sd = mmagic.to_ours(recipe.realbasicvsr_state_dict())
    params = convert.state_dict_to_params(sd, skip=(r"basicvsr\.spynet\.(mean|std)",))
    model = models.create_model("realbasicvsr", 4, NARROW)
    convert.check_params(params, ph.abstract_params(model.init, (1, 2, 16, 16, 3)), "RealBasicVSRNet")
    assert not mmagic.is_mmagic(recipe.make_spynet.seeded_state_dict())  # BasicSR's names are left alone
    # generator_ema first, then generator, else the state_dict as it is
    assert mmagic.select_generator({"generator.a": 1, "generator_ema.a": 2, "discriminator.a": 3}) == (
        {"a": 2},
        "generator_ema",
    )
    assert mmagic.select_generator({"generator.a": 1, "step_counter": 0}) == ({"a": 1}, "generator")
    assert mmagic.select_generator({"a": 1}) == ({"a": 1}, "")


def test_mmagic_spynet_file(tmp_path):
    """spynet_20210409-c6c1bd09.pth's names (no buffers: MMagic loads it before registering
    them) -> our SpyNet's params, equal to BasicSR's names converted; the importer says it is
    a flow network, not an SR model."""
    sd = {k: v for k, v in recipe.spynet_state_dict().items() if k not in ("mean", "std")}
    params = mmagic.spynet_params(sd)
    basicsr = recipe.make_spynet.seeded_state_dict()
    want = convert.state_dict_to_params(basicsr, skip=(r"mean", r"std"))
    jax.tree.map(np.testing.assert_array_equal, params, want)
    path = tmp_path / "spynet_20210409-c6c1bd09.npz"
    np.savez(path, **sd)
    with pytest.raises(UserError, match="SpyNet optical-flow state_dict, not a super-resolution model"):
        importer.prepare(str(path))
    del sd["basic_module.2.basic_module.3.conv.weight"]
    with pytest.raises(UserError, match=r"1 missing \(e\.g\. basic_module_2/basic_module_6/kernel\)"):
        mmagic.spynet_params(sd)


def test_damaged_mmagic_file_is_one_line(tmp_path, checkpoint, capsys):
    damaged = dict(checkpoint)
    del damaged["generator_ema.basicvsr.upsample2.upsample_conv.bias"]
    path = tmp_path / "damaged.npz"
    np.savez(path, **damaged)
    with pytest.raises(SystemExit) as exit_:  # the command line's path: one line, status 1
        vsr_cli.call(cli.main, ["import", str(path), str(tmp_path / "run")], prog=cli.PROG)
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "damaged.npz does not fit the model: keys 1 missing (e.g. basicvsr/upconv2/bias)" in err
    assert not (tmp_path / "run").exists()


def test_mmagic_checkpoint_extras_load_inert():
    """mmengine's HistoryBuffer, NumPy scalars and arrays in ``meta`` / ``message_hub``
    come back as placeholders (nothing imported or run); the weights as arrays."""
    path = str(ph.DATA / "mmagic_meta.pth")
    obj = pth.load(path)
    assert set(obj) == {"meta", "state_dict", "message_hub", "optimizer"}
    buffer = obj["message_hub"]["log_scalars"]["train/loss"]
    assert isinstance(buffer, pth.Unpickled) and buffer.name == "mmengine.logging.history_buffer.HistoryBuffer"
    assert isinstance(obj["meta"]["seed"], pth.Unpickled) and obj["meta"]["iter"] == 150000
    sd, source = importer.read_weights(path)
    assert sorted(sd) == ["image_cleaning.1.bias", "image_cleaning.1.weight"] and source == "generator_ema (EMA)"
    raw = pth.state_dict(obj, source=path)
    np.testing.assert_array_equal(sd["image_cleaning.1.bias"], raw["generator_ema.image_cleaning.1.bias"])
    assert not np.array_equal(sd["image_cleaning.1.bias"], raw["generator.image_cleaning.1.bias"])


def test_scale_and_shape_errors():
    with pytest.raises(ValueError, match="only scale 4"):
        ph.abstract_params(models.create_model("realbasicvsr", 2, NARROW).init, (1, 2, 16, 16, 3))
    with pytest.raises(ValueError, match=r"\(N, T, h, w, 3\)"):
        ph.abstract_params(models.create_model("realbasicvsr", 4, NARROW).init, (1, 16, 16, 3))


def test_gradients_flow_through_the_cleaning_branches(imported, ref):
    """Training works through nn.cond: the cleaning module's weights get gradients."""
    _, _, params = imported
    model = models.create_model("realbasicvsr", 4, {**NARROW, "dynamic_refine_thres": 0.0})
    lr = jnp.asarray(_frames(ref, "rbv_frames")[:1, :2])
    loss = lambda p: jnp.mean(model.apply({"params": p}, lr, method="cleaned") ** 2)  # noqa: E731
    grads = jax.jit(jax.grad(loss))(params)
    assert float(jnp.abs(grads["image_cleaning_0"]["main_0"]["kernel"]).max()) > 0
