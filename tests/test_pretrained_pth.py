"""The torch-free, restricted reader of PyTorch weight files (vsr_jax/pretrained/pth.py).

The fixtures in tests/data/pth were written by torch.save itself (make_pth.py, in the
reference venv); each .npz holds the values torch had. Malicious, big-endian and damaged
files are made here by hand, in torch's layout, with stand-in `torch` modules for pickling.
"""

import builtins
import collections
import io
import os
import pathlib
import pickle
import subprocess
import sys
import types
import zipfile

import ml_dtypes
import numpy as np
import pytest

from vsr_jax.errors import UserError
from vsr_jax.pretrained import pth

DATA = pathlib.Path(__file__).resolve().parent / "data" / "pth"
FIXTURES = ["basicsr_zip", "basicsr_legacy", "mmagic", "parameter", "param_dict", "vgg16_small"]


def _get(obj, key):
    for part in key.split("/") if key else []:
        obj = obj[part]
    return obj


@pytest.mark.parametrize("name", FIXTURES)
def test_load_matches_torch_exactly(name):
    obj = pth.load(DATA / f"{name}.pth")
    with np.load(DATA / f"{name}.npz") as z:
        keys = [k for k in z.files if not k.startswith("dtype:")]
        assert keys
        for key in keys:
            got, want, dtype = _get(obj, key), z[key], str(z["dtype:" + key])
            assert isinstance(got, np.ndarray) and got.shape == want.shape, key
            if dtype in ("bfloat16", "float8_e4m3fn"):
                assert got.dtype == getattr(ml_dtypes, dtype), key
                got = got.astype(np.float32)
            else:
                assert got.dtype == np.dtype(dtype), (key, got.dtype, dtype)
            assert np.array_equal(got, want), key
            assert got.dtype.isnative and got.flags.c_contiguous, key


def test_zip_and_legacy_agree_and_views_are_independent():
    a, b = pth.load(DATA / "basicsr_zip.pth"), pth.load(DATA / "basicsr_legacy.pth")
    sa, sb = a["params"], b["params"]
    assert isinstance(sa, dict) and list(sa) == list(sb)
    for k in sa:
        assert sa[k].dtype == sb[k].dtype and np.array_equal(sa[k], sb[k]), k
    base = sa["shared.base"]
    np.testing.assert_array_equal(sa["shared.t"], base.T)
    np.testing.assert_array_equal(sa["shared.slice"], base[1:4, 2:6])
    np.testing.assert_array_equal(sa["shared.expand"], np.broadcast_to(base[2, :3], (2, 3)))
    sa["shared.t"][0, 0] += 1  # a copy, not a view of the storage
    assert sa["shared.base"][0, 0] != sa["shared.t"][0, 0]


def test_state_dict_picks_the_tensors():
    obj = pth.load(DATA / "basicsr_zip.pth")
    ema = pth.state_dict(obj)  # params_ema first, as BasicSR's loaders prefer
    assert set(ema) < set(obj["params"]) and np.array_equal(ema["conv.bias"], obj["params"]["conv.bias"] + 1)
    assert pth.state_dict(obj, prefer=("params",))["bool"].dtype == np.bool_

    mm = pth.load(DATA / "mmagic.pth")
    sd = pth.state_dict(mm)
    assert sorted(sd) == sorted(
        f"{p}conv_first.{w}" for p in ("generator.", "generator_ema.") for w in ("weight", "bias")
    )
    assert sorted(pth.strip_prefix(sd, "generator_ema.")) == ["conv_first.bias", "conv_first.weight"]
    assert np.array_equal(pth.strip_prefix(sd, "generator.")["conv_first.bias"], sd["generator.conv_first.bias"])
    assert pth.strip_prefix(sd, "module.") == sd
    with pytest.raises(UserError, match=r"no key starts with 'module\.'"):
        pth.strip_prefix(sd, "module.", required=True)

    flat = pth.load(DATA / "param_dict.pth")
    assert sorted(pth.state_dict(flat)) == ["b", "w"]  # an nn.Parameter is its array

    with pytest.raises(UserError, match=r"x\.pth: expected a dict of tensors, got ndarray"):
        pth.state_dict(pth.load(DATA / "parameter.pth"), source="x.pth")
    with pytest.raises(UserError, match=r"top-level keys: 'meta', 'epoch'") as e:
        pth.state_dict({"meta": mm["meta"], "epoch": 3})
    assert "\n" not in str(e.value)
    with pytest.raises(UserError, match=r"\['state_dict'\]: not a flat .*'inner'"):
        pth.state_dict({"state_dict": {"inner": {"a": np.zeros(1)}}})


def test_meta_objects_are_placeholders():
    meta = pth.load(DATA / "mmagic.pth")["meta"]
    assert meta["epoch"] == 3 and meta["seen"] == {1, 2} and meta["mmengine_version"] == "0.10.0"
    cfg = meta["cfg"]
    assert isinstance(cfg, pth.Unpickled) and cfg.name == "__main__.TrainConfig"
    assert cfg.state == {"lr": 2e-4, "scales": [2, 4]}  # recorded, not applied
    assert isinstance(meta["np_scalar"], pth.Unpickled)


# --- hand-made files in torch's layouts ---------------------------------------------------------


class _Tensor:
    def __init__(self, storage, offset, size, stride, v1=False):
        self.args, self.v1 = (storage, offset, size, stride), v1


class _StorageRef:
    def __init__(self, key, stype, data, numel=None, view=None):
        self.key, self.stype, self.data, self.view = key, stype, data, view
        self.numel = data.size if numel is None else numel


def _torch_modules(monkeypatch):
    """Stand-in torch / torch._utils modules so pickle can name torch's globals."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    for name in ("_rebuild_tensor", "_rebuild_tensor_v2"):  # v1: torch < 0.4, as in 2017's vgg19-dcbb9e9d.pth

        def rebuild(*args):
            raise AssertionError("never called while pickling")

        rebuild.__module__, rebuild.__qualname__ = "torch._utils", name
        setattr(utils, name, rebuild)
    for name in ("FloatStorage", "LongStorage"):
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    torch._utils = utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", utils)
    _Tensor.__reduce__ = lambda t: (
        (utils._rebuild_tensor, t.args) if t.v1 else (utils._rebuild_tensor_v2, (*t.args, False, {}))
    )
    return torch


def _pickle(obj, torch):
    class P(pickle.Pickler):
        def persistent_id(self, o):
            if isinstance(o, _StorageRef):
                pid = ("storage", getattr(torch, o.stype), o.key, "cpu", o.numel)
                return pid if o.view is None else (*pid, o.view)
            return None

    buf = io.BytesIO()
    P(buf, protocol=2).dump(obj)
    return buf.getvalue()


def _write_zip(path, pkl, storages, byteorder="little"):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", pkl)
        z.writestr("archive/byteorder", byteorder)
        for s in storages:
            z.writestr(f"archive/data/{s.key}", s.data.tobytes())


def _write_legacy(path, pkl, storages):
    with open(path, "wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, {"protocol_version": 1001, "little_endian": True}):
            pickle.dump(header, f, protocol=2)
        f.write(pkl)
        pickle.dump(sorted(s.key for s in storages), f, protocol=2)
        for s in sorted(storages, key=lambda s: s.key):
            f.write(
                np.int64(s.data.size).astype("<i8").tobytes() + s.data.astype(s.data.dtype.newbyteorder("<")).tobytes()
            )


class _Evil:
    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return (self.fn, self.args)


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_malicious_globals_are_never_called(tmp_path, monkeypatch, layout):
    torch = _torch_modules(monkeypatch)
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "pwned"
    w = _StorageRef("0", "FloatStorage", np.arange(6, dtype=np.float32))
    obj = {
        "params": collections.OrderedDict(w=_Tensor(w, 0, (2, 3), (3, 1))),
        "system": _Evil(os.system, f"touch {marker}"),
        "eval": _Evil(builtins.eval, f"open({str(marker)!r}, 'w')"),
        "popen": _Evil(subprocess.Popen, ["touch", str(marker)]),
        "nested": _Evil(getattr, _Evil(builtins.__import__, "os"), "system"),
    }
    pkl = _pickle(obj, torch)
    assert b"system" in pkl and b"eval" in pkl and b"Popen" in pkl
    path = tmp_path / "evil.pth"
    (_write_zip if layout == "zip" else _write_legacy)(path, pkl, [w])
    monkeypatch.delitem(sys.modules, "torch")
    calls = []
    monkeypatch.setattr(os, "system", lambda *a: calls.append(a))  # in case anything did import and call it
    got = pth.load(path)
    assert not marker.exists() and calls == []
    assert np.array_equal(pth.state_dict(got)["w"], np.arange(6, dtype=np.float32).reshape(2, 3))
    assert isinstance(got["system"], pth.Unpickled) and got["system"].name in ("posix.system", "nt.system")
    assert got["system"].args == (f"touch {marker}",)
    builtin = "builtins"  # protocol 2 writes Python 2's names (__builtin__, commands), read as Python 3's
    assert got["eval"].name == f"{builtin}.eval" and got["popen"].name == "subprocess.Popen"
    assert got["nested"].name == f"{builtin}.getattr" and got["nested"].args[0].name == f"{builtin}.__import__"


def test_legacy_v1_tensors_on_storage_views(tmp_path, monkeypatch):
    """torch < 0.4's legacy files: _rebuild_tensor(storage, offset, size, stride) and storage
    views, persistent id ("storage", type, root key, location, numel, (view key, offset, size))."""
    torch = _torch_modules(monkeypatch)
    values = np.arange(10, dtype=np.float32)
    root = _StorageRef("7", "FloatStorage", values)
    view = _StorageRef("7", "FloatStorage", values, view=("8", 4, 6))
    pkl = _pickle({"a": _Tensor(view, 1, (2, 2), (1, 2), v1=True), "b": _Tensor(root, 0, (10,), (1,), v1=True)}, torch)
    _write_legacy(tmp_path / "old.pth", pkl, [root])
    got = pth.load(tmp_path / "old.pth")
    np.testing.assert_array_equal(got["a"], [[5, 7], [6, 8]])
    np.testing.assert_array_equal(got["b"], values)
    bad = _StorageRef("7", "FloatStorage", values, view=("8", 4, 6))
    pkl = _pickle({"a": _Tensor(bad, 4, (2, 2), (1, 2), v1=True)}, torch)  # reaches element 7 of a 6-element view
    _write_legacy(tmp_path / "bad.pth", pkl, [root])
    with pytest.raises(UserError, match=r"bad\.pth: a tensor reaches element 7 of storage 7\[4:10\], which has 6"):
        pth.load(tmp_path / "bad.pth")


def test_big_endian_zip(tmp_path, monkeypatch):
    torch = _torch_modules(monkeypatch)
    values = np.arange(12, dtype=np.float32) * 1.5 - 3
    longs = np.array([1, -2, 2**40], dtype=np.int64)
    f, i = _StorageRef("0", "FloatStorage", values.astype(">f4")), _StorageRef("1", "LongStorage", longs.astype(">i8"))
    pkl = _pickle({"a": _Tensor(f, 2, (2, 3), (1, 2)), "b": _Tensor(i, 0, (3,), (1,))}, torch)
    _write_zip(tmp_path / "be.pth", pkl, [f, i], byteorder="big")
    got = pth.load(tmp_path / "be.pth")
    np.testing.assert_array_equal(got["a"], values[2:8].reshape(3, 2).T)
    np.testing.assert_array_equal(got["b"], longs)
    assert got["a"].dtype == np.float32 and got["a"].dtype.isnative and got["b"].dtype == np.int64


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_tensor_past_its_storage_is_an_error(tmp_path, monkeypatch, layout):
    torch = _torch_modules(monkeypatch)
    s = _StorageRef("0", "FloatStorage", np.zeros(5, np.float32), numel=6)
    pkl = _pickle({"w": _Tensor(s, 0, (2, 3), (3, 1))}, torch)
    path = tmp_path / "short.pth"
    (_write_zip if layout == "zip" else _write_legacy)(path, pkl, [s])
    with pytest.raises(UserError, match=r"short\.pth: a tensor reaches element 5 of storage 0, which has 5.*again"):
        pth.load(path)


@pytest.mark.parametrize("name", ["basicsr_zip", "basicsr_legacy"])
@pytest.mark.parametrize("keep", [0.5, 0.97])
def test_truncated_file(tmp_path, name, keep):
    data = (DATA / f"{name}.pth").read_bytes()
    path = tmp_path / "cut.pth"
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(UserError, match=r"cut\.pth.*(truncated|damaged).*download it again") as e:
        pth.load(path)
    assert "\n" not in str(e.value)


def test_damaged_storage_member(tmp_path):
    with zipfile.ZipFile(DATA / "basicsr_zip.pth") as z, zipfile.ZipFile(tmp_path / "d.pth", "w") as out:
        for info in z.infolist():
            data = z.read(info)
            if "/data/" in info.filename and "/data/0" not in info.filename:
                continue  # drop all storages but one
            out.writestr(info, data)
    with pytest.raises(UserError, match=r"d\.pth lacks .*/data/\d+; the file is truncated or damaged"):
        pth.load(tmp_path / "d.pth")


def test_not_a_pth(tmp_path):
    with pytest.raises(UserError, match=r"nope\.pth not found"):
        pth.load(tmp_path / "nope.pth")
    with pytest.raises(UserError, match="is a folder"):
        pth.load(tmp_path)
    (tmp_path / "t.pth").write_text("<html>404 Not Found</html>")
    with pytest.raises(UserError, match=r"t\.pth is not a PyTorch weight file"):
        pth.load(tmp_path / "t.pth")
    (tmp_path / "p.pth").write_bytes(pickle.dumps({"a": 1}, protocol=2))
    with pytest.raises(UserError, match=r"p\.pth is a pickle but not a PyTorch weight file"):
        pth.load(tmp_path / "p.pth")
    np.savez(tmp_path / "a.npz", a=np.zeros(2))
    with pytest.raises(UserError, match=r"a\.npz is a zip but not a PyTorch weight file"):
        pth.load(tmp_path / "a.npz")
    (tmp_path / "e.pth").write_bytes(b"")
    with pytest.raises(UserError, match=r"e\.pth is not a PyTorch weight file"):
        pth.load(tmp_path / "e.pth")
