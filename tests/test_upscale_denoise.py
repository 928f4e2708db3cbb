"""vsr-upscale --model=realesr-general-x4v3 --denoise: the model's parameters mixed with its -wdn-
twin's as Real-ESRGAN's dni (denoise·model + (1 − denoise)·twin, default 0.5), on two tiny SRVGG
state_dicts put in the weights cache (nothing reaches the network); --denoise where there is no
twin, out of range, or a component (SpyNet) as --model: one line."""

import dataclasses
import pathlib
import socket

import jax
import numpy as np
import pytest

from tests import upscale_helpers as uh
from tests.test_upscale_cli import error_lines, upscale
from vsr_jax.errors import UserError
from vsr_jax.pretrained import dni, download, importer, registry
from vsr_jax.upscale import sources

SRVGG = pathlib.Path(__file__).parent / "data" / "published" / "srvgg.npz"  # narrow SRVGGNetCompact x4 (8 feat)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "weights"
    d.mkdir()
    monkeypatch.setenv(download.ENV_VAR, str(d))
    return d


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def twins(cache):
    """A general-x4v3-like entry whose two files (a tiny SRVGG and a perturbed copy) are in the cache."""
    with np.load(SRVGG) as z:
        a = {k[len("x4/sd/") :]: z[k] for k in z.files if k.startswith("x4/sd/")}
    rng = np.random.default_rng(0)
    b = {k: (v + rng.normal(0, 0.1, v.shape)).astype(np.float32) for k, v in a.items()}
    np.savez(cache / "tiny-general-x4v3.npz", **a)
    np.savez(cache / "tiny-general-wdn-x4v3.npz", **b)
    base = f"http://127.0.0.1:{_closed_port()}"  # never reached: the files are cached
    entry = dataclasses.replace(
        registry.get("realesr-general-x4v3"),
        url=f"{base}/tiny-general-x4v3.npz",
        twin=f"{base}/tiny-general-wdn-x4v3.npz",
    )
    return entry, a, b


def _expected(tmp_path, a, b, weight):
    """The params of the state_dict Real-ESRGAN's dni would give, through the importer."""
    path = tmp_path / f"mixed-{weight}.npz"
    np.savez(path, **dni.interpolate_params(a, b, weight))
    return importer.load_weights(str(path))[2]


def _assert_same(p, q):
    flat_p, flat_q = jax.tree_util.tree_leaves_with_path(p), jax.tree_util.tree_leaves_with_path(q)
    assert [k for k, _ in flat_p] == [k for k, _ in flat_q]
    for (k, x), (_, y) in zip(flat_p, flat_q, strict=True):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y), err_msg=str(k))


def test_denoise_mixes_the_twin_like_real_esrgans_dni(twins, tmp_path):
    entry, a, b = twins
    m = sources.registry_model(entry, bf16=False, progress=False, denoise=0.3)
    _assert_same(m.params, _expected(tmp_path, a, b, 0.3))
    # the model line vsr-upscale prints at start-up (`sources.choose_model`)
    assert "denoise 0.3 (0.3 x tiny-general-x4v3.npz + 0.7 x tiny-general-wdn-x4v3.npz)" in m.description
    default = sources.registry_model(entry, bf16=False, progress=False)  # Real-ESRGAN's -dn default: 0.5
    _assert_same(default.params, _expected(tmp_path, a, b, 0.5))
    assert default.label != m.label and "@dn0.3" in m.label and "@dn0.5" in default.label
    # the mix changes the output: the model runs on the mixed parameters
    lr = np.random.default_rng(1).random((1, 1, 6, 7, 3), np.float32)
    out_m = np.asarray(m.model.apply({"params": m.params}, lr))
    out_d = np.asarray(default.model.apply({"params": default.params}, lr))
    assert out_m.shape == (1, 1, 24, 28, 3) and np.abs(out_m - out_d).max() > 1e-3


def test_denoise_one_is_the_model_alone_without_its_twin(twins, cache):
    entry, a, _ = twins
    (cache / "tiny-general-wdn-x4v3.npz").unlink()  # not needed, not fetched
    m = sources.registry_model(entry, bf16=False, progress=False, denoise=1.0)
    _assert_same(m.params, importer.load_weights(str(cache / "tiny-general-x4v3.npz"))[2])


def _one_line(e) -> str:
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


def test_denoise_where_it_does_not_apply_is_one_line_before_any_download(cache, twins):
    entry, _, _ = twins
    with pytest.raises(UserError) as e:
        sources.registry_model("realesr-animevideov3", bf16=False, progress=False, denoise=0.5)
    assert _one_line(e) == (
        "--denoise mixes a model with its denoising twin (realesr-general-x4v3); realesr-animevideov3 has none: "
        "leave --denoise out"
    )
    with pytest.raises(UserError) as e:
        sources.registry_model(entry, bf16=False, progress=False, denoise=1.5)
    assert _one_line(e) == "--denoise must be between 0 and 1 (0: weak denoise, 1: strong), got 1.5"
    with pytest.raises(UserError) as e:
        sources.choose_model(None, None, "file.pth", None, False, denoise=0.5)
    assert "use it with --model" in _one_line(e)
    with pytest.raises(UserError) as e:
        sources.registry_model("spynet_sintel_final", bf16=False, progress=False)
    assert _one_line(e).startswith(
        "spynet_sintel_final is a spynet (flow (for basicvsr training)), a part of another model, "
        "not a model that upscales"
    )
    assert sorted(p.name for p in cache.iterdir()) == ["tiny-general-wdn-x4v3.npz", "tiny-general-x4v3.npz"]


def test_denoise_flag_without_a_twin_is_one_line(tmp_path):
    uh.write_video(tmp_path / "clip.mp4", uh.moving_frames(2, 8, 8))
    proc = upscale(tmp_path / "clip.mp4", "-o", tmp_path / "out.mp4", "--model=realesr-animevideov3", "--denoise=0.3")
    assert proc.returncode == 1
    assert error_lines(proc) == [
        "vsr-upscale: error: --denoise mixes a model with its denoising twin (realesr-general-x4v3); "
        "realesr-animevideov3 has none: leave --denoise out"
    ]
