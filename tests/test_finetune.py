"""Starting from published weights (`init_from`, `model.spynet_init`) and the flow network's
optimizer options (`flow_lr_mul`, `fix_flow_steps`); configs/basicvsr.py:quick end to end (slow)."""

import json
import logging
import os

import jax
import numpy as np
import optax
import pytest

from tests import published_helpers as ph
from tests.conftest import ROOT, load_config, override, tiny_unet_config
from vsr_jax import checkpointing, config_lib, init_from, optimizers, resume, sharding, train, train_state
from vsr_jax.errors import ConfigError, UserError
from vsr_jax.pretrained import convert, download, importer

PTH = str(ROOT / "tests" / "data" / "pth" / "msrresnet_x4.pth")  # BasicSR's MSRResNet x4, 8 features, 2 blocks
LR = 1e-3


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _max_change(a, b) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(_leaves(a), _leaves(b), strict=True))


# ------------------------------------------------------------- flow_lr_mul / fix_flow_steps


def tiny_flow_config(**overrides):
    """configs/convlstm.py:quick shrunk (a 2-level flow network; compiles in seconds)."""
    config = load_config("convlstm", "quick")
    config.model.features = 8
    config.model.extract_blocks = 1
    config.model.recon_blocks = 1
    config.model.flow_levels = 2
    config.model.flow_features = (4, 4, 4, 4)
    config.model.flow_kernel_size = 3
    config.data.num_frames = 3
    config.data.patch_size = 16
    config.batch_size = 2
    config.learning_rate = LR
    config.lr_schedule = "constant"
    config.flow_lr_mul = 0.125
    config.fix_flow_steps = 2
    return override(config, **overrides)


def _tree(rng, scale=1.0):
    """A params-like tree with a flow network (`flownet`, as convlstm_vsr's) and another module."""
    return {
        "flownet": {"conv": {"kernel": scale * rng.standard_normal((3, 3, 2, 4), np.float32)}},
        "body": {"kernel": scale * rng.standard_normal((3, 3, 4, 4), np.float32), "bias": np.ones(4, np.float32)},
    }


@pytest.fixture(scope="module")
def flow_run():
    """Four updates of `make_optimizer(tiny_flow_config())` (fix_flow_steps 2, flow_lr_mul
    0.125) on random gradients: (config, tx, update, gradients, [state after 0..4 updates])."""
    config = tiny_flow_config()
    tx = optimizers.make_optimizer(config)
    rng = np.random.default_rng(0)
    grads = [_tree(rng) for _ in range(4)]

    @jax.jit
    def update(state, g):
        updates, opt_state = tx.update(g, state.opt_state, state.params)
        return state.replace(
            step=state.step + 1, generator=train_state.Net(optax.apply_updates(state.params, updates), opt_state)
        )

    params = jax.tree.map(np.asarray, _tree(np.random.default_rng(1), scale=0.01))  # small: fine float32 steps
    state = train_state.TrainState(
        step=np.int32(0), generator=train_state.Net(params, tx.init(params)), guard=train_state.Guard.new()
    )
    states = [jax.device_get(state)]
    for g in grads:
        state = update(state, g)
        states.append(jax.device_get(state))
    return config, tx, update, grads, states


def _counts(opt_state) -> dict:
    """{'flow frozen': n, 'flow adam': n, 'rest adam': n}: the update counts in a flow-split opt_state."""
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(opt_state):
        name = jax.tree_util.keystr(path)
        if name.endswith(".count") and "inner_state[0]" in name:
            group = "flow" if "'flow'" in name else "rest"
            out[f"{group} {'adam' if name.endswith('inner.count') or group == 'rest' else 'frozen'}"] = int(leaf)
    return out


def test_flow_params_stay_frozen_then_train_at_the_multiplied_rate(flow_run):
    config, *_, states = flow_run
    flow = lambda i: states[i].params["flownet"]["conv"]["kernel"]  # noqa: E731
    body = lambda i: states[i].params["body"]["kernel"]  # noqa: E731
    for i in (1, 2):  # the frozen steps: the flow network bit-identical, the rest moving
        np.testing.assert_array_equal(flow(i), flow(0))
        assert np.all(body(i) != body(i - 1))
    assert _counts(states[2].opt_state) == {"flow frozen": 2, "flow adam": 0, "rest adam": 2}
    # step 3 is the flow group's first Adam step (its moments did not see the frozen steps'
    # gradients): every flow param moves by lr × flow_lr_mul, as every other param did at step 1 by lr
    flow_step, body_step = np.abs(flow(3) - flow(2)), np.abs(body(1) - body(0))
    print(f"first Adam step: flow {flow_step.mean():.5g}, others {body_step.mean():.5g}")
    np.testing.assert_allclose(flow_step, LR * config.flow_lr_mul, rtol=1e-4)
    np.testing.assert_allclose(body_step, LR, rtol=1e-4)
    assert _counts(states[4].opt_state) == {"flow frozen": 4, "flow adam": 2, "rest adam": 4}


@pytest.mark.parametrize("stop", [1, 3])  # inside the frozen phase, and after it
def test_a_run_stopped_inside_or_after_the_freeze_resumes_bit_exact(flow_run, tmp_path, stop):
    config, tx, update, grads, states = flow_run
    ckpt = checkpointing.Checkpointer(str(tmp_path), save_every=1, async_save=False)
    ckpt.save(
        stop, train_state.state_fields(jax.tree.map(jax.numpy.asarray, states[stop])), config.to_dict(), {}, force=True
    )
    abstract = checkpointing.abstract_like(jax.tree.map(jax.numpy.asarray, states[0]))
    fields, step, _, _ = ckpt.restore_newest(train_state.state_fields(abstract))
    ckpt.close()
    assert step == stop
    state = train_state.from_fields(fields)
    for g in grads[stop:]:
        state = update(state, g)
    for a, b in zip(_leaves(jax.device_get(state)), _leaves(states[4]), strict=True):
        np.testing.assert_array_equal(a, b)


def test_resuming_with_the_flow_options_turned_off_names_them(flow_run, tmp_path):
    config, *_, states = flow_run
    ckpt = checkpointing.Checkpointer(str(tmp_path), save_every=1, async_save=False)
    ckpt.save(1, train_state.state_fields(jax.tree.map(jax.numpy.asarray, states[1])), config.to_dict(), {}, force=True)
    plain = tiny_flow_config(flow_lr_mul=1.0, fix_flow_steps=0, total_steps=9)  # total_steps: no shape
    params = jax.tree.map(jax.numpy.asarray, states[0].params)
    state = train_state.TrainState(
        np.int32(0), train_state.Net(params, optimizers.make_optimizer(plain).init(params)), train_state.Guard.new()
    )
    abstract = checkpointing.abstract_like(state)
    check = resume.refuse_other_model(str(tmp_path), abstract, plain.to_dict())
    with pytest.raises(checkpointing.CheckpointError, match=r"fix_flow_steps: 2 -> 0; flow_lr_mul: 0.125 -> 1.0") as e:
        ckpt.restore_newest(train_state.state_fields(abstract), check=check)
    ckpt.close()
    assert "total_steps" not in str(e.value)


def test_a_nested_flow_module_is_its_own_group(monkeypatch):
    """A flow network inside a submodule (realbasicvsr's basicvsr/spynet) by its path."""
    monkeypatch.setattr(optimizers, "flow_modules", lambda config: ("outer/spynet",))
    tx = optimizers.make_optimizer(tiny_flow_config(fix_flow_steps=1))
    params = {"outer": {"spynet": {"k": np.ones(2, np.float32)}, "spynet2": {"k": np.ones(2, np.float32)}}}
    grads = jax.tree.map(np.ones_like, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    assert not np.any(updates["outer"]["spynet"]["k"]) and np.all(updates["outer"]["spynet2"]["k"] != 0)


def test_without_the_options_the_optimizer_state_is_the_plain_one():
    config = tiny_flow_config(flow_lr_mul=1.0, fix_flow_steps=0)
    params = {"flownet": {"k": np.zeros(2, np.float32)}, "conv": {"k": np.zeros(3, np.float32)}}
    plain = jax.tree.structure(optimizers.make_optimizer(config).init(params))
    assert plain == jax.tree.structure(optax.adam(optax.constant_schedule(1e-3)).init(params))


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: tiny_unet_config(fix_flow_steps=5), "fix_flow_steps act on a model's flow network; 'unet' has none"),
        (lambda: tiny_unet_config(flow_lr_mul=0.5), "flow_lr_mul act on a model's flow network; 'unet' has none"),
        (lambda: tiny_flow_config(**{"model.align": False}), "which this config leaves out"),
        (lambda: tiny_flow_config(**{"data.num_frames": 1}), "use clips of 2 or more frames"),
        (lambda: tiny_flow_config(fix_flow_steps=-1), "fix_flow_steps must be >= 0"),
        (lambda: tiny_flow_config(flow_lr_mul=-0.1), "flow_lr_mul must be >= 0"),
    ],
)
def test_flow_options_on_a_model_without_a_flow_network_are_one_line(make, message):
    with pytest.raises(ConfigError, match=message) as e:
        config_lib.validate(make())
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------- init_from


def msrresnet_config(**overrides):
    """BasicSR's MSRResNet at the width of tests/data/pth/msrresnet_x4.pth, one tiny step."""
    config = config_lib.base_config()
    config.model.name = "msrresnet"
    config.model.features = 8
    config.model.num_blocks = 2
    config.data.num_frames = 1
    config.data.patch_size = 16
    config.batch_size = 2
    config.learning_rate = 1e-4
    config.total_steps = 1
    config.checkpoint_every = 1
    config.log_every = 1
    config.eval.max_clips = 1
    config.eval.frame_stride = 50
    config.init_from = PTH
    return override(config, **overrides)


def _abstract_params(config):
    model, tx = config_lib.build_model(config), optimizers.make_optimizer(config)
    return train_state.abstract_train_state(config, model, tx, sharding.make_mesh()).params


@pytest.fixture(scope="module")
def file_params():
    return importer.load_weights(PTH)[2]


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, file_params):
    """A run of one step from msrresnet_x4.pth (EMA 0.9), then resumed to step 2 with an
    init_from that no longer exists: (workdir, log records of the resume)."""
    workdir = str(tmp_path_factory.mktemp("finetune") / "run")
    handler = _Records()
    with pytest.MonkeyPatch.context() as mp:  # the held-out evaluation is not what is tested here (10 s)
        mp.setattr(train, "_final_evaluation", lambda *args: {"step": args[6]})
        train.train_and_evaluate(msrresnet_config(ema_decay=0.9), workdir)
        first = checkpointing.load_params(workdir)
        logging.getLogger().addHandler(handler)
        try:
            result = train.train_and_evaluate(
                msrresnet_config(ema_decay=0.9, total_steps=2, init_from="/nonexistent/weights.pth"), workdir
            )
        finally:
            logging.getLogger().removeHandler(handler)
    return workdir, first, result, handler.messages


class _Records(logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_a_fresh_run_starts_from_the_file_params(file_params):
    config = msrresnet_config(ema_decay=0.9)
    weights, record = init_from.starting_weights(config, _abstract_params(config))
    assert record["init_from"]["sha256"] == download.sha256_file(PTH) and record["init_from"]["kind"] == "file"
    mesh = sharding.make_mesh()
    model, tx = config_lib.build_model(config), optimizers.make_optimizer(config)
    state = train_state.with_weights(train_state.create_train_state(config, model, tx, mesh), weights, mesh)
    for tree in (state.params, state.ema):  # step 0: the file's params, the EMA too
        for a, b in zip(_leaves(tree), _leaves(file_params), strict=True):
            np.testing.assert_array_equal(a, b)
    assert int(state.step) == 0 and all(not np.any(x) for x in _leaves(state.opt_state[0].mu))  # fresh Adam


def test_a_finetuned_run_records_its_source_and_moves_only_by_its_steps(finetuned, file_params):
    workdir, (config, ema, step), _, _ = finetuned
    assert step == 1 and config["init_from"] == PTH
    # one Adam step moves each param by at most the rate (1e-4); the EMA (0.9) a tenth of that
    change = _max_change(ema, file_params)
    print(f"EMA after one step from the file: max |change| {change:.3g}")
    assert 0 < change <= 1.01e-5
    ckpt = checkpointing.Checkpointer(workdir, save_every=1)
    metadata = [ckpt.read_json(s, "metadata") for s in (1, 2)]
    ckpt.close()
    for m in metadata:  # the resumed run's checkpoints still say where it started
        assert m["init_from"] == {
            "source": PTH,
            "kind": "file",
            "path": os.path.abspath(PTH),
            "sha256": download.sha256_file(PTH),
        }


def test_a_resumed_run_ignores_init_from_and_says_so(finetuned):
    _, _, result, messages = finetuned
    assert result["step"] == 2
    assert any("resuming from step 1: init_from / model.spynet_init are not used" in m for m in messages), messages


def test_init_from_a_run_folder_and_its_record(tmp_path, file_params):
    run = str(tmp_path / "imported")
    importer.import_weights(PTH, run)
    config = msrresnet_config(init_from=run)
    weights, record = init_from.starting_weights(config, _abstract_params(config))
    assert record["init_from"] == {"source": run, "kind": "run", "path": run, "step": 0}
    for a, b in zip(_leaves(weights), _leaves(file_params), strict=True):
        np.testing.assert_array_equal(a, b)


def test_init_from_a_run_of_our_own_model_whose_saved_config_has_lists(tmp_path, caplog):
    config = tiny_unet_config()  # model.features (8, 16): a list in the run's saved JSON
    abstract = _abstract_params(config)
    params = jax.tree.map(lambda a: np.full(a.shape, 0.5, a.dtype), abstract)
    checkpointing.write_run(str(tmp_path / "run"), config, params, step=7)
    config.init_from = str(tmp_path / "run")
    with caplog.at_level(logging.WARNING):
        weights, record = init_from.starting_weights(config, abstract)
    assert record["init_from"]["step"] == 7 and all(np.all(x == 0.5) for x in _leaves(weights))
    assert not [r for r in caplog.records if "was made with" in r.getMessage()]  # (8, 16) == [8, 16]
    config.model.features = (8, 8)
    with pytest.raises(ConfigError, match=r"holds a unet x2 with features \[8, 16\], the config builds a unet x2 with"):
        init_from.starting_weights(config, _abstract_params(config))


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"model.features": 16},
            "holds a msrresnet x4 with features 8, the config builds a msrresnet x4 with features 16: "
            "set --config.model.features=8",
        ),
        (
            {"model.num_blocks": 3, "model.features": 8},
            "holds a msrresnet x4 with num_blocks 2, the config builds a msrresnet x4 with num_blocks 3",
        ),
        ({"data.scale": 2}, "holds a msrresnet x4, the config builds a msrresnet x2: set --config.data.scale=4"),
        ({"model.name": "srcnn"}, "holds a msrresnet x4, the config builds a srcnn x4: use a msrresnet config"),
        ({"init_from": "no-such-model"}, "init_from='no-such-model' is no run folder, weight file or published name"),
    ],
)
def test_weights_that_do_not_fit_are_one_line(overrides, message):
    config = msrresnet_config(**overrides)
    if config.model.name == "srcnn":
        del config.model["features"], config.model["num_blocks"]
    with pytest.raises(ConfigError) as e:
        init_from.starting_weights(config, _abstract_params(config))
    assert message in str(e.value) and "\n" not in str(e.value), str(e.value)


def test_a_fresh_run_whose_weights_do_not_fit_writes_nothing(tmp_path):
    with pytest.raises(ConfigError, match="init_from .* holds a msrresnet x4 with features 8"):
        train.train_and_evaluate(msrresnet_config(**{"model.features": 16}), str(tmp_path / "run"))
    assert not os.path.exists(checkpointing.checkpoint_dir(str(tmp_path / "run")))


# ------------------------------------------------------------------------ spynet_init


@pytest.fixture(scope="module")
def spynet_file(tmp_path_factory):
    """BasicSR's SpyNet state_dict (seeded weights of tests/data/published/make_spynet.py) as an .npz."""
    sd = ph.recipe("spynet").seeded_state_dict()
    path = tmp_path_factory.mktemp("spynet") / "spynet_seeded.npz"
    np.savez(path, **{k: np.asarray(v, np.float32) for k, v in sd.items()})
    return str(path), convert.state_dict_to_params(sd, skip=(r"mean", r"std"))


def tiny_basicvsr_config(**overrides):
    config = load_config("basicvsr", "quick")
    config.model.num_feat = 4
    config.model.num_block = 1
    config.data.num_frames = 3
    config.data.patch_size = 16
    config.batch_size = 2
    return override(config, **overrides)


def test_spynet_init_loads_basicsr_spynet_into_the_flow_network(spynet_file, tmp_path):
    path, want = spynet_file
    config = tiny_basicvsr_config(**{"model.spynet_init": path})
    abstract = _abstract_params(config)
    weights, record = init_from.starting_weights(config, abstract)
    assert set(weights) == {"spynet"} and record["spynet_init"]["sha256"] == download.sha256_file(path)
    for a, b in zip(_leaves(weights["spynet"]), _leaves(want), strict=True):
        np.testing.assert_array_equal(a, b)
    # a BasicVSR file's spynet.* keys serve as well
    with np.load(path) as f:
        np.savez(
            tmp_path / "basicvsr_like.npz", **{f"spynet.{k}": f[k] for k in f.files}, **{"fusion.bias": np.zeros(4)}
        )
    config.model.spynet_init = str(tmp_path / "basicvsr_like.npz")
    weights, _ = init_from.starting_weights(config, abstract)
    for a, b in zip(_leaves(weights["spynet"]), _leaves(want), strict=True):
        np.testing.assert_array_equal(a, b)
    # MMagic's layout (spynet_20210409-c6c1bd09.pth: ConvModule names, in a checkpoint's generator)
    mm = ph.recipe("realbasicvsr").spynet_state_dict()
    np.savez(tmp_path / "mmagic_spynet.npz", **{f"generator.{k}": np.asarray(v, np.float32) for k, v in mm.items()})
    config.model.spynet_init = str(tmp_path / "mmagic_spynet.npz")
    weights, _ = init_from.starting_weights(config, abstract)
    for a, b in zip(_leaves(weights["spynet"]), _leaves(want), strict=True):
        np.testing.assert_array_equal(a, b)
    config.model.spynet_init = PTH  # not a SpyNet
    with pytest.raises(ConfigError, match="model.spynet_init .*msrresnet_x4.pth does not fit the model"):
        init_from.starting_weights(config, abstract)


def test_the_full_recipe_without_the_spynet_file_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setenv("VSR_JAX_WEIGHTS_DIR", str(tmp_path))
    config = tiny_basicvsr_config(**{"model.spynet_init": load_config("basicvsr").model.spynet_init})
    with pytest.raises(UserError) as e:
        init_from.starting_weights(config, _abstract_params(config))
    assert str(tmp_path / "spynet_sintel_final-3d2a1287.pth") in str(e.value) and "\n" not in str(e.value)


def test_spynet_init_on_a_model_without_a_flow_network_is_one_line():
    config = tiny_unet_config()
    config.model.spynet_init = "spynet_sintel_final"
    with pytest.raises(ConfigError, match="model.spynet_init act on a model's flow network; 'unet' has none"):
        config_lib.validate(config)


@pytest.mark.slow
def test_basicvsr_quick_trains_with_a_frozen_spynet_and_resumes(spynet_file, tmp_path):
    """configs/basicvsr.py:quick shrunk, with SpyNet from a file, frozen for the first step."""
    path, want = spynet_file
    config = tiny_basicvsr_config(
        **{"model.spynet_init": path, "fix_flow_steps": 1, "flow_lr_mul": 0.125, "total_steps": 1}
    )
    config.checkpoint_every = 1
    config.eval.max_clips = 1
    config.eval.frame_stride = 50
    workdir = str(tmp_path / "run")
    train.train_and_evaluate(config, workdir)
    _, params, step = checkpointing.load_params(workdir)
    assert step == 1
    for a, b in zip(_leaves(params["spynet"]), _leaves(want), strict=True):
        np.testing.assert_array_equal(a, b)  # frozen
    config.total_steps = 2
    result = train.train_and_evaluate(config, workdir)
    _, params2, step = checkpointing.load_params(workdir)
    assert step == 2 and result["step"] == 2 and np.isfinite(result["psnr_y"])
    assert 0 < _max_change(params2["spynet"], want) <= 1.001 * config.learning_rate * 0.125
    assert json.load(open(os.path.join(workdir, "config.json")))["model"]["spynet_init"] == path


@pytest.mark.slow
def test_basicvsrpp_quick_trains_with_mmagics_spynet_frozen_and_resumes(tmp_path):
    """configs/basicvsrpp.py:quick shrunk, SpyNet from an MMagic-layout file (as spynet_mmagic),
    frozen for the first step, then at 0.25x the rate; two steps, the second after a resume."""
    mm = ph.recipe("realbasicvsr").spynet_state_dict()
    path = str(tmp_path / "spynet_mmagic_like.npz")
    np.savez(path, **{k: np.asarray(v, np.float32) for k, v in mm.items()})
    want = convert.state_dict_to_params(ph.recipe("spynet").seeded_state_dict(), skip=(r"mean", r"std"))
    config = override(
        load_config("basicvsrpp", "quick"),
        **{"model.mid_channels": 8, "model.spynet_init": path, "fix_flow_steps": 1, "flow_lr_mul": 0.25},
    )
    config.data.num_frames, config.data.patch_size, config.batch_size = 3, 16, 1
    config.total_steps, config.checkpoint_every = 1, 1
    config.eval.max_clips, config.eval.frame_stride = 1, 50
    workdir = str(tmp_path / "run")
    train.train_and_evaluate(config, workdir)
    _, params, step = checkpointing.load_params(workdir)
    assert step == 1
    for a, b in zip(_leaves(params["spynet"]), _leaves(want), strict=True):
        np.testing.assert_array_equal(a, b)  # frozen
    config.total_steps = 2
    result = train.train_and_evaluate(config, workdir)
    _, params2, step = checkpointing.load_params(workdir)
    assert step == 2 and result["step"] == 2 and np.isfinite(result["psnr_y"])
    assert 0 < _max_change(params2["spynet"], want) <= 1.001 * config.learning_rate * 0.25
    assert _max_change(params2["deform_align"], params["deform_align"]) > 0  # the DCN layers learn
