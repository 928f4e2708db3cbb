"""`python -m vsr_jax.pretrained import`: a state_dict -> a run folder that vsr-eval and
vsr-upscale read (`evaluate.runs.load_run`), keeping parity with the authors' outputs.

The state_dicts and outputs are the parity fixtures of tests/data/published (narrow models
made by the authors' packages); each is written as its own .npz and imported without --arch.
"""

import hashlib
import importlib.util
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from vsr_jax import checkpointing
from vsr_jax.errors import UserError
from vsr_jax.evaluate.runs import load_run
from vsr_jax.pretrained import __main__ as cli
from vsr_jax.pretrained import importer

DATA = pathlib.Path(__file__).parent / "data" / "published"


def fixture_state_dict(arch: str, tag: str) -> tuple[dict, dict]:
    """(state_dict, the whole fixture) of `tag` (x4, x2, lrelu, ...) in DATA/<arch>.npz."""
    with np.load(DATA / f"{arch}.npz") as f:
        ref = dict(f)
    prefix = f"{tag}/sd/"
    return {k[len(prefix) :]: v for k, v in ref.items() if k.startswith(prefix)}, ref


def save_npz(tmp_path, name: str, sd: dict) -> str:
    path = str(tmp_path / name)
    np.savez(path, **sd)
    return path


def nhwc(x):
    return np.transpose(x, (0, 2, 3, 1))


# (arch, fixture tag, scale, options the shapes cannot show, what the shapes tell, NHWC input/output keys)
CASES = [
    ("msrresnet", "x4", 4, {}, {"features": 8, "num_blocks": 2}, ("input", "x4/output")),
    ("edsr", "x4", 4, {"res_scale": 0.1}, {"features": 8, "num_blocks": 2}, ("input", "x4/output")),
    ("edsr", "x3", 3, {}, {"features": 8, "num_blocks": 2}, ("input", "x3/output")),
    ("rrdbnet", "x2", 2, {}, {"features": 4, "num_blocks": 2, "grow_features": 2}, None),
    ("srvgg", "x4", 4, {}, {"features": 8, "num_conv": 3, "act": "prelu"}, None),
    ("srvgg", "lrelu", 2, {}, {"features": 8, "num_conv": 3, "act": "lrelu"}, None),
]


@pytest.mark.parametrize("arch, tag, scale, options, inferred, io", CASES, ids=[f"{c[0]}-{c[1]}" for c in CASES])
def test_import_round_trip_keeps_parity(tmp_path, arch, tag, scale, options, inferred, io):
    sd, ref = fixture_state_dict(arch, tag)
    path = save_npz(tmp_path, f"{arch}_{tag}.npz", sd)
    run = str(tmp_path / "run")
    spec, params = importer.import_weights(path, run, options=options)
    assert (spec.arch, spec.scale, spec.kwargs) == (arch, scale, {**inferred, **options})

    config, model, loaded, step = load_run(run, None)
    assert step == 0 and config.model.name == arch and int(config.data.scale) == scale
    assert int(config.data.num_frames) == 1
    flat_want = checkpointing.named_leaves(params)
    flat_have = checkpointing.named_leaves(loaded)
    assert set(flat_have) == set(flat_want)
    for k, v in flat_want.items():
        np.testing.assert_array_equal(np.asarray(flat_have[k]), v, err_msg=k)

    if io is None:  # the Real-ESRGAN fixtures are NCHW
        lr, want = nhwc(ref[f"{tag}/input"]), nhwc(ref[f"{tag}/output"])
    else:
        lr, want = ref[io[0]], ref[io[1]]
    out = np.asarray(jax.jit(model.apply)({"params": loaded}, lr[None])[0])
    assert out.shape == want.shape
    diff = float(np.max(np.abs(out - want)))
    print(f"import {arch} {tag}: max|diff| {diff:.2e}")
    assert diff <= 1e-4

    meta = checkpointing.Checkpointer(run, save_every=1, async_save=False)
    try:
        source = meta.read_json(0, "metadata")["imported_from"]
    finally:
        meta.close()
    assert source["file"] == os.path.basename(path) and source["arch"] == arch
    assert source["sha256"] == hashlib.sha256(pathlib.Path(path).read_bytes()).hexdigest()


def _load_basicvsr_recipe():
    spec = importlib.util.spec_from_file_location("make_basicvsr", DATA / "make_basicvsr.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # numpy only at import
    return module


def test_import_basicvsr_keeps_its_weights_and_frames(tmp_path):
    recipe = _load_basicvsr_recipe()
    sd = {k: np.asarray(v, np.float32) for k, v in recipe.seeded_state_dict().items()}
    path = save_npz(tmp_path, "basicvsr.npz", sd)
    spec, params = importer.import_weights(path, str(tmp_path / "run"))
    assert (spec.arch, spec.scale, spec.kwargs) == (
        "basicvsr",
        4,
        {"num_feat": recipe.NUM_FEAT, "num_block": recipe.NUM_BLOCK},
    )
    config, _, loaded, _ = load_run(str(tmp_path / "run"), None)
    assert int(config.data.num_frames) == 7
    assert "mean" not in params["spynet"]  # the ImageNet buffers are checked, not stored
    have, want = checkpointing.named_leaves(loaded), checkpointing.named_leaves(params)
    assert set(have) == set(want) and all(np.array_equal(np.asarray(have[k]), want[k]) for k in want)


def test_a_file_that_does_not_fit_is_one_line_and_writes_nothing(tmp_path):
    sd, _ = fixture_state_dict("msrresnet", "x4")
    path = save_npz(tmp_path, "m.npz", sd)
    run = tmp_path / "run"
    errors = []
    with pytest.raises(UserError, match=r"not a edsr state_dict: no key 'conv_after_body\.weight'") as e:
        importer.import_weights(path, str(run), arch="edsr")
    errors.append(e)
    fit = r"m\.npz does not fit the model: keys 2 unexpected \(e\.g\. upconv2/bias\)"
    with pytest.raises(UserError, match=fit) as e:
        importer.import_weights(path, str(run), scale=2)
    errors.append(e)
    truncated = save_npz(tmp_path, "cut.npz", {k: v for k, v in sd.items() if not k.startswith("conv_last.")})
    with pytest.raises(UserError, match=r"cut\.npz does not fit .*2 missing \(e\.g\. conv_last/bias\)") as e:
        importer.import_weights(truncated, str(run))
    errors.append(e)
    foreign = save_npz(tmp_path, "foreign.npz", {"encoder.0.weight": np.zeros((4, 3, 3, 3), np.float32)})
    with pytest.raises(UserError, match=r"no known architecture .* \(first: encoder\.0\.weight\); name one") as e:
        importer.import_weights(foreign, str(run))
    errors.append(e)
    assert all("\n" not in str(x.value) for x in errors)
    assert not run.exists()


def test_an_existing_run_folder_is_refused_and_kept(tmp_path):
    sd, _ = fixture_state_dict("srvgg", "x2")
    path = save_npz(tmp_path, "s.npz", sd)
    run = tmp_path / "run"
    run.mkdir()  # empty: used
    assert cli.main(["import", path, str(run)]) == 0
    assert (run / "checkpoints").is_dir()
    before = sorted(p.name for p in run.rglob("*"))
    proc = subprocess.run(
        [sys.executable, "-m", "vsr_jax.pretrained", "import", path, str(run)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        f"python -m vsr_jax.pretrained: error: {run} already exists and is not empty; "
        "choose a new run folder (nothing is overwritten)"
    ]
    assert sorted(p.name for p in run.rglob("*")) == before


def test_options_parse():
    assert importer.parse_options("res_scale=0.1, act=prelu,num_conv=3,flag=true") == {
        "res_scale": 0.1,
        "act": "prelu",
        "num_conv": 3,
        "flag": True,
    }
    with pytest.raises(UserError, match="expected k=v"):
        importer.parse_options("res_scale")


def test_a_gan_checkpoint_gives_its_generators_ema(tmp_path):
    """MMagic keeps ``generator.*`` and ``generator_ema.*`` (and the discriminator's) in one
    state_dict: the EMA generator's are imported."""
    sd, _ = fixture_state_dict("srvgg", "x2")
    mixed = {f"generator_ema.{k}": v for k, v in sd.items()}
    mixed.update({f"generator.{k}": np.zeros_like(v) for k, v in sd.items()})
    mixed["discriminator.conv0.weight"] = np.zeros((4, 3, 3, 3), np.float32)
    path = save_npz(tmp_path, "gan.npz", mixed)
    _, params = importer.import_weights(path, str(tmp_path / "run"))
    np.testing.assert_array_equal(params["body_8"]["bias"], sd["body.8.bias"])


def _shapes(**shapes):
    """A state_dict stand-in of the given shapes (zero-stride arrays: no memory)."""
    return {k.replace("__", "."): np.broadcast_to(np.float32(0), s) for k, s in shapes.items()}


def test_published_sizes_are_recognised_from_shapes():
    rrdb = _shapes(conv_first__weight=(64, 12, 3, 3), body__0__rdb1__conv1__weight=(32, 64, 3, 3))
    rrdb["body.22.rdb1.conv1.weight"] = rrdb["body.0.rdb1.conv1.weight"]
    assert importer.infer_spec(rrdb) == importer.Spec(
        "rrdbnet", 2, {"features": 64, "num_blocks": 23, "grow_features": 32}
    )  # RealESRGAN_x2plus
    edsr = _shapes(conv_first__weight=(256, 3, 3, 3), conv_after_body__weight=(256, 256, 3, 3))
    edsr.update(_shapes(body__31__conv1__weight=(256, 256, 3, 3), upsample__0__weight=(1024, 256, 3, 3)))
    edsr["upsample.2.weight"] = edsr["upsample.0.weight"]
    assert importer.infer_spec(edsr) == importer.Spec(
        "edsr", 4, {"features": 256, "num_blocks": 32, "res_scale": 0.1}
    )  # EDSR_Lx4
    vgg = _shapes(body__0__weight=(64, 3, 3, 3), body__1__weight=(64,), body__66__weight=(48, 64, 3, 3))
    assert importer.infer_spec(vgg) == importer.Spec(
        "srvgg", 4, {"features": 64, "num_conv": 32, "act": "prelu"}
    )  # realesr-general-x4v3


def test_a_pth_written_by_torch_imports_through_the_cli_to_the_authors_outputs(tmp_path):
    """BasicSR's own file layout ({"params": ...}, torch's zip format; tests/data/pth/make_msrresnet_pth.py),
    read without torch, recognised without --arch, scored against BasicSR's MSRResNet outputs."""
    pth = pathlib.Path(__file__).parent / "data" / "pth" / "msrresnet_x4.pth"
    run = tmp_path / "run"
    assert cli.main(["import", str(pth), str(run)]) == 0
    config, model, params, _ = load_run(str(run), None)
    assert config.model.name == "msrresnet" and int(config.data.scale) == 4
    with np.load(DATA / "msrresnet.npz") as f:
        lr, want = f["input"], f["x4/output"]
    out = np.asarray(jax.jit(model.apply)({"params": params}, lr[None])[0])
    assert float(np.max(np.abs(out - want))) <= 1e-4


def _load_recipe(name: str):
    spec = importlib.util.spec_from_file_location(name, DATA / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # numpy only at import
    return module


@pytest.mark.parametrize(
    ("arch", "kwargs", "want"),
    [
        ("edvr", "tsa", 5),
        ("edvr", "predeblur", 3),
        ("iconvsr", {"temporal_padding": 3}, 7),
    ],
)
def test_import_deformable_models_infers_their_options(tmp_path, arch, kwargs, want):
    recipe = _load_recipe(f"make_{arch}")
    if arch == "edvr":
        kwargs = dict(recipe.CONFIGS[kwargs][0])
        expected = {"num_extract_block": 1, **kwargs}
    else:
        expected = {"num_feat": recipe.NUM_FEAT, "num_block": recipe.NUM_BLOCK, **kwargs}
    sd = {k: np.asarray(v, np.float32) for k, v in recipe.seeded_state_dict(**kwargs).items()}
    spec, params = importer.import_weights(save_npz(tmp_path, f"{arch}.npz", sd), str(tmp_path / "run"))
    assert (spec.arch, spec.scale) == (arch, 4)
    assert {k: spec.kwargs[k] for k in expected} == expected
    config, _, loaded, _ = load_run(str(tmp_path / "run"), None)
    assert int(config.data.num_frames) == want  # EDVR: its window; IconVSR: as BasicVSR
    have, want_params = checkpointing.named_leaves(loaded), checkpointing.named_leaves(params)
    assert set(have) == set(want_params)


def test_import_basicvsrpp_from_an_mmagic_checkpoint(tmp_path):
    """MMagic's layout (``generator.`` prefix, ConvModule ``.conv``, ``upsample1.upsample_conv``)
    is renamed, the options read from the shapes, SpyNet's buffers checked and left out."""
    recipe = _load_recipe("make_basicvsrpp")
    sd = {f"generator.{k}": np.asarray(v, np.float32) for k, v in recipe.state_dict().items()}
    spec, params = importer.import_weights(save_npz(tmp_path, "bvpp.npz", sd), str(tmp_path / "run"))
    assert (spec.arch, spec.scale) == ("basicvsrpp", 4)
    assert spec.kwargs == {"mid_channels": recipe.MID, "num_blocks": recipe.BLOCKS}
    assert "mean" not in params["spynet"] and "conv_offset_6" in params["deform_align"]["backward_1"]
