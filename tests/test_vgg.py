"""VGG feature extractor (models/vgg.py), its weight loaders (vgg_weights.py) and the converter CLI.

The weight files here are fakes with the real Keras / torchvision names and layouts but narrow
block widths (`SMALL`), so they are a few KB and quick to write.
"""

import functools
import math
import subprocess
import sys

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.conftest import ROOT
from vsr_jax import vgg_weights
from vsr_jax.errors import UserError
from vsr_jax.models.vgg import VGGFeatures, vgg_conv_names, vgg_layer_names, vgg_param_shapes
from vsr_jax.tools import convert_vgg

SMALL = (4, 8, 8, 16, 16)

# BasicSR's basicsr/archs/vgg_arch.py NAMES["vgg19"]
BASICSR_VGG19 = (
    "conv1_1 relu1_1 conv1_2 relu1_2 pool1 conv2_1 relu2_1 conv2_2 relu2_2 pool2 "
    "conv3_1 relu3_1 conv3_2 relu3_2 conv3_3 relu3_3 conv3_4 relu3_4 pool3 "
    "conv4_1 relu4_1 conv4_2 relu4_2 conv4_3 relu4_3 conv4_4 relu4_4 pool4 "
    "conv5_1 relu5_1 conv5_2 relu5_2 conv5_3 relu5_3 conv5_4 relu5_4 pool5"
).split()


def fake_params(depth, seed=0, widths=SMALL):
    """{conv: {"kernel": HWIO, "bias"}} of known random values."""
    rng = np.random.default_rng(seed)
    return {
        name: {k: (0.3 * rng.standard_normal(shape)).astype(np.float32) for k, shape in s.items()}
        for name, s in vgg_param_shapes(depth, widths).items()
    }


def write_keras_h5(path, params, style="keras1"):
    """A Keras applications notop-style file: one group per layer (pools and input too), as Keras writes them."""
    with h5py.File(path, "w") as f:
        root = f.create_group("model_weights") if style == "keras2_model" else f
        layer_names = ["input_1"]
        for b in range(1, 6):
            layer_names += [vgg_weights.keras_layer_name(n) for n in params if n.startswith(f"conv{b}_")]
            layer_names.append(f"block{b}_pool")
        root.attrs["layer_names"] = np.array([n.encode() for n in layer_names])
        for layer in layer_names:
            g = root.create_group(layer)
            names = []
            conv = next((n for n in params if vgg_weights.keras_layer_name(n) == layer), None)
            if conv is not None:
                if style == "keras1":  # the published files
                    names = [f"{layer}_W_1:0", f"{layer}_b_1:0"]
                else:  # Keras 2 save_weights: nested under the layer name
                    names = [f"{layer}/kernel:0", f"{layer}/bias:0"]
                g.create_dataset(names[0], data=params[conv]["kernel"])
                g.create_dataset(names[1], data=params[conv]["bias"])
            g.attrs["weight_names"] = np.array([n.encode() for n in names], dtype="S64")
    return path


def torch_state_dict(params):
    """torchvision layout: features.{i}.weight OIHW, plus a classifier the loader ignores."""
    depth = 19 if "conv3_4" in params else 16
    sd = {}
    for name, i in vgg_weights.torch_feature_indices(depth).items():
        sd[f"features.{i}.weight"] = params[name]["kernel"].transpose(3, 2, 0, 1).copy()
        sd[f"features.{i}.bias"] = params[name]["bias"]
    sd["classifier.0.weight"] = np.zeros((7, 5), np.float32)
    return sd


@functools.partial(jax.jit, static_argnums=0)
def apply(model, params, x):
    return model.apply({"params": params}, x)


def init_shapes(model, x):
    return jax.eval_shape(lambda: model.init(jax.random.key(0), x))["params"]


# --- the network ----------------------------------------------------------------------------------


def test_layer_names_match_basicsr():
    assert vgg_layer_names(19) == BASICSR_VGG19
    names16 = vgg_layer_names(16)
    assert len(names16) == 13 * 2 + 5 and names16[-3:] == ["conv5_3", "relu5_3", "pool5"]
    assert "conv3_4" not in names16 and "conv5_4" not in names16
    assert vgg_conv_names(16) == [n for n in names16 if n.startswith("conv")]
    # full widths: Keras' VGG16/VGG19 notop parameter counts
    counts = {d: sum(math.prod(s) for p in vgg_param_shapes(d).values() for s in p.values()) for d in (16, 19)}
    assert counts == {16: 14_714_688, 19: 20_024_384}


def test_feature_shapes_and_only_needed_layers():
    model = VGGFeatures(depth=19, layers=("relu2_2", "conv5_4", "pool5", "conv1_1"), widths=SMALL)
    x = jnp.zeros((2, 32, 32, 3))
    params = init_shapes(model, x)
    out = jax.eval_shape(lambda p: model.apply({"params": p}, x), params)
    assert sorted(out) == ["conv1_1", "conv5_4", "pool5", "relu2_2"]  # (jax transforms sort dict keys)
    assert {k: v.shape for k, v in out.items()} == {
        "relu2_2": (2, 16, 16, 8),
        "conv5_4": (2, 2, 2, 16),
        "pool5": (2, 1, 1, 16),
        "conv1_1": (2, 32, 32, 4),
    }
    assert all(v.dtype == jnp.float32 for v in out.values())
    # the loader's layout: params[conv]["kernel"] HWIO, ["bias"]
    assert jax.tree.map(lambda a: a.shape, params) == vgg_param_shapes(19, SMALL)
    # clips, odd sides (pools floor), and only the convs up to the deepest requested layer
    model = VGGFeatures(depth=16, layers=("relu2_2",), widths=SMALL)
    x = jnp.zeros((1, 3, 33, 21, 3))
    params = init_shapes(model, x)
    assert sorted(params) == ["conv1_1", "conv1_2", "conv2_1", "conv2_2"]
    assert jax.eval_shape(lambda p: model.apply({"params": p}, x), params)["relu2_2"].shape == (1, 3, 16, 10, 8)


def test_bad_layer_names_and_inputs_are_named():
    with pytest.raises(ValueError, match=r"VGG16 has no layer\(s\) \['conv5_4'\]"):
        init_shapes(VGGFeatures(depth=16), jnp.zeros((1, 32, 32, 3)))
    with pytest.raises(ValueError, match="depth must be 16 or 19"):
        init_shapes(VGGFeatures(depth=11), jnp.zeros((1, 32, 32, 3)))
    with pytest.raises(ValueError, match="too small to reach pool5"):
        init_shapes(VGGFeatures(layers=("pool5",), widths=SMALL), jnp.zeros((1, 16, 16, 3)))
    with pytest.raises(ValueError, match="input_mode"):
        init_shapes(VGGFeatures(layers=("conv1_1",), input_mode="bgr"), jnp.zeros((1, 8, 8, 3)))


def test_relu_is_max_of_conv_and_conv1_1_uses_the_loaded_weights():
    params = jax.tree.map(jnp.asarray, fake_params(19))
    model = VGGFeatures(depth=19, layers=("conv1_1", "conv3_1", "relu3_1"), widths=SMALL)
    x = jax.random.uniform(jax.random.key(1), (2, 16, 16, 3))
    out = apply(model, params, x)
    conv, relu = np.asarray(out["conv3_1"]), np.asarray(out["relu3_1"])
    assert (conv < 0).mean() > 0.2  # so relu differs from conv
    np.testing.assert_array_equal(relu, np.maximum(conv, 0))
    normed = (x - jnp.array([0.485, 0.456, 0.406])) / jnp.array([0.229, 0.224, 0.225])
    ref = jax.lax.conv_general_dilated(
        normed, params["conv1_1"]["kernel"], (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC")
    )
    np.testing.assert_allclose(out["conv1_1"], ref + params["conv1_1"]["bias"], rtol=1e-5, atol=1e-5)


def identity_conv1_1():
    """conv1_1 that copies its 3 input channels to its first 3 outputs (centre tap 1, no bias)."""
    kernel = np.zeros((3, 3, 3, SMALL[0]), np.float32)
    for c in range(3):
        kernel[1, 1, c, c] = 1.0
    return {"conv1_1": {"kernel": jnp.asarray(kernel), "bias": jnp.zeros(SMALL[0])}}


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({}, lambda x: (x - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]),
        ({"input_mode": "caffe"}, lambda x: x[..., ::-1] * 255.0 - [103.939, 116.779, 123.68]),
        (
            {"input_mode": "caffe", "range_norm": True},
            lambda x: (x[..., ::-1] + 1) / 2 * 255.0 - [103.939, 116.779, 123.68],
        ),
        ({"input_mode": "caffe", "use_input_norm": False}, lambda x: x),
    ],
)
def test_input_normalisation(options, expected):
    model = VGGFeatures(layers=("conv1_1",), widths=SMALL, **options)
    x = np.random.default_rng(0).uniform(size=(1, 5, 6, 3)).astype(np.float32)
    seen = np.asarray(apply(model, identity_conv1_1(), jnp.asarray(x))["conv1_1"])
    np.testing.assert_allclose(seen[..., :3], expected(x), rtol=1e-5, atol=1e-4)
    np.testing.assert_array_equal(seen[..., 3:], 0)


def test_bfloat16_compute_gives_float32_close_to_float32():
    params = jax.tree.map(jnp.asarray, fake_params(19))
    x = jax.random.uniform(jax.random.key(2), (1, 16, 16, 3))
    kw = {"depth": 19, "layers": ("relu2_2",), "widths": SMALL}
    ref = apply(VGGFeatures(**kw), params, x)["relu2_2"]
    low = apply(VGGFeatures(**kw, dtype=jnp.bfloat16), params, x)["relu2_2"]
    assert low.dtype == jnp.float32
    assert float(jnp.abs(low - ref).max()) < 0.05 * float(jnp.abs(ref).max())


def test_random_vgg_params_layout_and_determinism():
    a = vgg_weights.random_vgg_params(19, jax.random.key(0), SMALL)
    b = vgg_weights.random_vgg_params(19, jax.random.key(0), SMALL)
    c = vgg_weights.random_vgg_params(19, jax.random.key(1), SMALL)
    model = VGGFeatures(depth=19, layers=("pool5",), widths=SMALL)
    assert jax.tree.map(lambda p: p.shape, a) == jax.tree.map(
        lambda p: p.shape, init_shapes(model, jnp.zeros((1, 32, 32, 3)))
    )
    assert all(bool((p == q).all()) for p, q in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True))
    assert not np.array_equal(a["conv3_2"]["kernel"], c["conv3_2"]["kernel"])
    assert float(a["conv5_4"]["kernel"].std()) == pytest.approx(np.sqrt(2 / (9 * 16)), rel=0.2)  # He normal
    assert sorted(vgg_weights.random_vgg_params(16, jax.random.key(0))) == sorted(vgg_conv_names(16))


# --- weight files ---------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["keras1", "keras2", "keras2_model"])
@pytest.mark.parametrize("depth", [16, 19])
def test_keras_h5_lands_in_the_right_layers(tmp_path, style, depth):
    want = fake_params(depth)
    path = write_keras_h5(tmp_path / "notop.h5", want, style)
    params, input_mode = vgg_weights.load_vgg_params(path)  # depth from the file
    assert input_mode == "caffe"
    assert sorted(params) == sorted(vgg_conv_names(depth))
    with h5py.File(path, "r") as f:
        group = f["model_weights"] if style == "keras2_model" else f
        name = "block3_conv2_W_1:0" if style == "keras1" else "block3_conv2/kernel:0"
        assert params["conv3_2"]["kernel"][1, 2, 3, 4] == group["block3_conv2"][name][1, 2, 3, 4]
    for layer, p in want.items():
        np.testing.assert_array_equal(params[layer]["kernel"], p["kernel"])
        np.testing.assert_array_equal(params[layer]["bias"], p["bias"])
        assert params[layer]["kernel"].dtype == np.float32
    assert vgg_weights.load_vgg_params(path, depth, widths=SMALL)[0].keys() == params.keys()


def test_wrong_depth_is_named(tmp_path):
    vgg16 = write_keras_h5(tmp_path / "vgg16.h5", fake_params(16))
    with pytest.raises(UserError, match=r"vgg16\.h5: layer block3_conv4 missing; VGG19 needs it .*use depth 16"):
        vgg_weights.load_vgg_params(vgg16, 19)
    vgg19 = write_keras_h5(tmp_path / "vgg19.h5", fake_params(19))
    with pytest.raises(UserError, match=r"vgg19\.h5 holds VGG19 weights \(it has block3_conv4\), not VGG16"):
        vgg_weights.load_vgg_params(vgg19, 16)


def test_wrong_shapes_are_named(tmp_path):
    path = write_keras_h5(tmp_path / "small.h5", fake_params(19))
    with pytest.raises(
        UserError, match=r"layer block1_conv1: kernel shape \(3, 3, 3, 4\) \(HWIO\), expected \(3, 3, 3, 64\)"
    ):
        vgg_weights.load_vgg_params(path, 19, widths=(64, 128, 256, 512, 512))
    bad = fake_params(19)
    bad["conv2_2"]["kernel"] = np.zeros((3, 3, 5, 8), np.float32)  # conv2_1 gives 8 channels, not 5
    path = write_keras_h5(tmp_path / "bad.h5", bad)
    with pytest.raises(
        UserError, match=r"layer block2_conv2: kernel shape \(3, 3, 5, 8\) \(HWIO\), expected \(3, 3, 8, 8\)"
    ):
        vgg_weights.load_vgg_params(path)


def test_missing_and_unknown_files_are_named(tmp_path):
    missing = tmp_path / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with pytest.raises(UserError) as e:
        vgg_weights.load_vgg_params(missing, 19)
    message = str(e.value)
    assert str(missing) in message and "not found" in message
    assert vgg_weights.KERAS_URLS[19] in message and "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth" in message
    assert "\n" not in message
    (tmp_path / "notes.txt").write_text("not weights")
    with pytest.raises(UserError, match="is not a VGG weight file"):
        vgg_weights.load_vgg_params(tmp_path / "notes.txt")
    np.savez(tmp_path / "no_mode.npz", **{"conv1_1/kernel": np.zeros((3, 3, 3, 4))})
    with pytest.raises(UserError, match="has no 'input_mode' entry"):
        vgg_weights.load_vgg_params(tmp_path / "no_mode.npz")


def test_torch_indices_and_oihw_to_hwio():
    assert list(vgg_weights.torch_feature_indices(19).values()) == [
        0,
        2,
        5,
        7,
        10,
        12,
        14,
        16,
        19,
        21,
        23,
        25,
        28,
        30,
        32,
        34,
    ]
    assert list(vgg_weights.torch_feature_indices(16).values()) == [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]
    want = fake_params(19)
    sd = torch_state_dict(want)
    params = vgg_weights.torch_state_dict_to_params(sd)  # depth from the number of convs
    assert params["conv3_2"]["kernel"][1, 2, 3, 4] == sd["features.12.weight"][4, 3, 1, 2]
    assert params["conv3_2"]["bias"][5] == sd["features.12.bias"][5]
    for layer, p in want.items():
        np.testing.assert_array_equal(params[layer]["kernel"], p["kernel"])
        np.testing.assert_array_equal(params[layer]["bias"], p["bias"])
    with pytest.raises(UserError, match=r"conv3_4 \(features\.16\.weight\) missing; VGG19 needs it"):
        vgg_weights.torch_state_dict_to_params(torch_state_dict(fake_params(16)), 19)


def test_pth_without_torch(monkeypatch, tmp_path):
    """torchvision's legacy .pth layout (as vgg19-dcbb9e9d.pth), written by torch in
    tests/data/pth/make_pth.py, read by vsr_jax.pretrained.pth with torch unimportable."""
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` now raises ImportError
    data = ROOT / "tests" / "data" / "pth"
    params, input_mode = vgg_weights.load_vgg_params(data / "vgg16_small.pth")
    with np.load(data / "vgg16_small.npz") as z:
        want = vgg_weights.torch_state_dict_to_params({k: z[k] for k in z.files if not k.startswith("dtype:")})
    assert input_mode == "torch" and sorted(params) == sorted(vgg_conv_names(16))
    for name in params:
        np.testing.assert_array_equal(params[name]["kernel"], want[name]["kernel"])
        np.testing.assert_array_equal(params[name]["bias"], want[name]["bias"])
    path = tmp_path / "vgg19-dcbb9e9d.pth"
    path.write_bytes((data / "vgg16_small.pth").read_bytes()[:-40])  # an interrupted download
    with pytest.raises(UserError, match=r"vgg19-dcbb9e9d\.pth is truncated.*download it again"):
        vgg_weights.load_vgg_params(path)


def test_pth_with_torch(tmp_path):
    torch = pytest.importorskip("torch", reason="torch not installed: the .pth reader is checked without it above")
    want = fake_params(16)
    path = tmp_path / "vgg16.pth"
    torch.save({k: torch.from_numpy(v) for k, v in torch_state_dict(want).items()}, path)
    params, input_mode = vgg_weights.load_vgg_params(path)
    assert input_mode == "torch" and sorted(params) == sorted(vgg_conv_names(16))
    np.testing.assert_array_equal(params["conv4_3"]["kernel"], want["conv4_3"]["kernel"])


# --- the converter --------------------------------------------------------------------------------


def run_convert(*args):
    return subprocess.run(
        [sys.executable, "-m", "vsr_jax.tools.convert_vgg", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )


def test_convert_cli_round_trip(tmp_path):
    src = write_keras_h5(tmp_path / "vgg19.h5", fake_params(19))
    out = tmp_path / "vgg19.npz"
    proc = run_convert(src, out)
    assert proc.returncode == 0, proc.stderr
    assert "VGG19" in proc.stdout and "input_mode=caffe" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vgg19.h5", "vgg19.npz"]  # no temp file left
    want, _ = vgg_weights.load_vgg_params(src)
    got, input_mode = vgg_weights.load_vgg_params(out)
    assert input_mode == "caffe"
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_array_equal(a, b)
    with np.load(out) as z:
        assert z["input_mode"].shape == () and str(z["input_mode"]) == "caffe"


def test_convert_cli_errors_leave_no_output(tmp_path, capsys):
    out = tmp_path / "out.npz"
    proc = run_convert(tmp_path / "nope.h5", out, "--depth=19")
    assert proc.returncode == 1
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "nope.h5 not found" in lines[0]
    # in-process from here (no interpreter start-up)
    src = write_keras_h5(tmp_path / "vgg16.h5", fake_params(16))
    assert convert_vgg.main([str(src), str(out), "--depth=19"]) == 1
    assert "block3_conv4 missing" in capsys.readouterr().err
    assert convert_vgg.main([str(src), str(tmp_path / "no_such_dir" / "out.npz")]) == 1
    assert "does not exist" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vgg16.h5"]
    assert convert_vgg.main([str(src), str(out)]) == 0
    assert "VGG16" in capsys.readouterr().out and out.is_file()
