"""PyTorch weight files (``.pth``) read without torch, and safely.

`load` returns the object ``torch.save`` wrote, with every tensor as a NumPy array
(its dtype, shape and values; strides and storage offsets applied; a C-contiguous copy in
native byte order; bfloat16 / float8 as ml_dtypes' types),
an ``nn.Parameter`` as its array and an ``OrderedDict`` as a dict. Both of torch's formats:

* the zip format (torch >= 1.6): ``<name>/data.pkl`` (the object pickle; tensors refer to
  storages by persistent id ``("storage", type, key, location, numel)``), the storages'
  raw bytes in ``<name>/data/<key>``, and ``<name>/byteorder`` (``little`` when absent);
* the legacy format (``_use_new_zipfile_serialization=False``, and files from torch < 1.6
  such as torchvision's ``vgg19-dcbb9e9d.pth``): pickles of a magic number, a protocol
  version and sys info, then the object pickle (persistent ids ``("storage", type, key,
  location, numel, view)``), then the sorted list of storage keys, then for each storage
  its element count (int64, little-endian) and its bytes (little-endian).

Safety: a ``.pth`` is a pickle, and a pickle can name any function to call. Ours resolves
only what weight files need (``collections.OrderedDict``, torch's tensor and parameter
rebuilders — our own NumPy versions, `_REBUILDERS` —, storage type names and dtypes, a few
harmless builtins, `_ALLOWED_BUILTINS`); any other global becomes an `Unpickled`
placeholder class that records its name and arguments and runs nothing. So the ``meta`` of
an MMagic checkpoint (config objects, NumPy scalars) loads as placeholders while its
tensors come through as arrays. Tensors are bounds-checked against their storage's bytes.

`state_dict` picks the name -> array mapping in a loaded file (BasicSR's ``params`` /
``params_ema``, MMagic's ``state_dict``, or a bare state dict); `strip_prefix` drops
``module.`` / ``generator.`` / ``generator_ema.``. Every failure is a one-line
`vsr_jax.errors.UserError` naming the file. (Just over 500 lines: both formats and the
restricted unpickler belong together; splitting them would separate the safety rules from the
code they guard.)
"""

from __future__ import annotations

import _compat_pickle
import io
import os
import pickle
import struct
import sys
import zipfile
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from vsr_jax.errors import UserError

__all__ = ["Unpickled", "load", "state_dict", "strip_prefix"]

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_REDOWNLOAD = "download it again (or save it again with torch.save)"


def _ml_dtype(name: str) -> np.dtype | None:
    try:
        import ml_dtypes
    except ImportError:  # pragma: no cover - jax depends on ml_dtypes
        return None
    return np.dtype(getattr(ml_dtypes, name))


# torch storage type name / dtype name -> NumPy dtype (little-endian); "ml:NAME": ml_dtypes.NAME.
_STORAGE_DTYPES = {
    "DoubleStorage": "<f8",
    "FloatStorage": "<f4",
    "HalfStorage": "<f2",
    "BFloat16Storage": "ml:bfloat16",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
    "ComplexFloatStorage": "<c8",
    "ComplexDoubleStorage": "<c16",
    "UntypedStorage": "u1",
}
_TORCH_DTYPES = {
    "float64": "<f8",
    "double": "<f8",
    "float32": "<f4",
    "float": "<f4",
    "float16": "<f2",
    "half": "<f2",
    "bfloat16": "ml:bfloat16",
    "float8_e4m3fn": "ml:float8_e4m3fn",
    "float8_e5m2": "ml:float8_e5m2",
    "float8_e4m3fnuz": "ml:float8_e4m3fnuz",
    "float8_e5m2fnuz": "ml:float8_e5m2fnuz",
    "int64": "<i8",
    "long": "<i8",
    "int32": "<i4",
    "int": "<i4",
    "int16": "<i2",
    "short": "<i2",
    "int8": "i1",
    "uint8": "u1",
    "uint16": "<u2",
    "uint32": "<u4",
    "uint64": "<u8",
    "bool": "?",
    "complex64": "<c8",
    "complex128": "<c16",
}


class _DType:
    """A torch dtype or storage type named in a pickle: only its NumPy dtype matters."""

    def __init__(self, name: str, code: str):
        self.name, self.code = name, code

    def numpy(self, source: str) -> np.dtype:
        if self.code.startswith("ml:"):
            dtype = _ml_dtype(self.code[3:])
            if dtype is None:  # pragma: no cover
                raise UserError(f"{source}: a {self.name} tensor needs the ml_dtypes package (pip install ml_dtypes)")
            return dtype
        return np.dtype(self.code)

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class Unpickled:
    """A global the reader does not trust, in place of the object it would have built.

    ``name`` is the dotted name the pickle asked for; an instance records the arguments it
    was called (or ``__new__``-ed) with, its pickled state and any items or list entries the
    pickle added. Nothing is imported or executed."""

    name = "?"

    def __new__(cls, *args, **kwargs):
        self = object.__new__(cls)
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "kwargs", kwargs)
        object.__setattr__(self, "state", None)
        object.__setattr__(self, "items", {})
        object.__setattr__(self, "list", [])
        return self

    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        return _placeholder(f"{self.name}(...)")(*args, **kwargs)

    def __setstate__(self, state):
        object.__setattr__(self, "state", state)

    def __setitem__(self, key, value):
        self.items[key] = value

    def append(self, value):
        self.list.append(value)

    def extend(self, values):
        self.list.extend(values)

    def __repr__(self) -> str:
        return f"Unpickled({self.name}, args={self.args!r})"


def _placeholder(name: str) -> type[Unpickled]:
    return type("Unpickled", (Unpickled,), {"name": name, "__qualname__": f"Unpickled[{name}]"})


class _Dict(dict):
    """An ``OrderedDict`` from the pickle: a dict that also takes the attributes pickled
    with it (a state dict's ``_metadata``)."""


class _Storage:
    """One storage: its raw little-endian bytes (None while only scanning) and element dtype."""

    def __init__(self, key: str, dtype: _DType, numel: int, data: np.ndarray | None):
        self.key, self.dtype, self.numel, self.data = key, dtype, numel, data


class _Unpickler(pickle.Unpickler):
    """The restricted unpickler: `find_class` resolves only the names in `_ALLOWED_BUILTINS`,
    `_REBUILDERS`, `_TENSOR_TYPES` and torch's storage / dtype names; anything else is an
    `Unpickled` placeholder."""

    def __init__(self, file, source: str, storage, byteorder: str = "little"):
        super().__init__(file, encoding="latin1")  # legacy files from Python 2 store bytes as str
        self.source = source
        self.storage = storage  # persistent id tuple -> _Storage
        self.byteorder = byteorder

    def find_class(self, module: str, name: str):
        # Python 2's names (protocol 2 pickles, torch's default, write them) -> Python 3's, as pickle does
        if (module, name) in _compat_pickle.NAME_MAPPING:
            module, name = _compat_pickle.NAME_MAPPING[(module, name)]
        elif module in _compat_pickle.IMPORT_MAPPING:
            module = _compat_pickle.IMPORT_MAPPING[module]
        full = f"{module}.{name}"
        if full in _ALLOWED_BUILTINS:
            return _ALLOWED_BUILTINS[full]
        if module in ("torch", "torch.storage", "torch.cuda") and name in _STORAGE_DTYPES:
            return _DType(name, _STORAGE_DTYPES[name])
        if module == "torch" and name in _TORCH_DTYPES:
            return _DType(name, _TORCH_DTYPES[name])
        rebuild = _REBUILDERS.get(full)
        if rebuild is not None:
            return lambda *args: rebuild(self, *args)
        if full in _TENSOR_TYPES:
            return _TENSOR_TYPES[full]
        return _placeholder(full)

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise UserError(f"{self.source}: unknown persistent id {str(pid)[:80]!r} (not a weight file torch writes)")
        return self.storage(pid)

    # --- NumPy versions of torch._utils' rebuilders ---

    def tensor(self, storage, offset, size, stride, dtype: _DType | None = None):
        if not isinstance(storage, _Storage):
            raise UserError(f"{self.source}: a tensor without a storage ({type(storage).__name__}); {_REDOWNLOAD}")
        if storage.data is None:  # scanning a legacy file for its storages
            return None
        np_dtype = (dtype or storage.dtype).numpy(self.source)
        raw = storage.data
        count = raw.size // np_dtype.itemsize
        flat = raw[: count * np_dtype.itemsize].view(np_dtype)
        size, stride, offset = tuple(int(s) for s in size), tuple(int(s) for s in stride), int(offset)
        if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size) or any(s < 0 for s in stride):
            raise UserError(f"{self.source}: a tensor with a bad layout (size {size}, stride {stride}); {_REDOWNLOAD}")
        if 0 in size:
            return np.zeros(size, np_dtype)
        last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
        if last >= count:
            raise UserError(
                f"{self.source}: a tensor reaches element {last} of storage {storage.key}, which has {count}; "
                f"the file is truncated or damaged: {_REDOWNLOAD}"
            )
        view = np.lib.stride_tricks.as_strided(
            flat[offset:], shape=size, strides=tuple(s * np_dtype.itemsize for s in stride), writeable=False
        )
        array = np.array(view, order="C")
        if self.byteorder == "big" and np_dtype.itemsize > 1:  # swap each element's bytes (complex: each part's)
            if np_dtype.kind == "c":
                return array.byteswap()
            swapped = array.view(f"u{np_dtype.itemsize}").byteswap()
            return swapped.view(np_dtype)
        return array


def _rebuild_tensor(u: _Unpickler, storage, offset, size, stride, *_):
    return u.tensor(storage, offset, size, stride)


def _rebuild_tensor_v3(u: _Unpickler, storage, offset, size, stride, requires_grad, hooks, dtype, *_):
    if not isinstance(dtype, _DType):
        raise UserError(f"{u.source}: a tensor of dtype {_kind(dtype)}, which this reader does not support")
    return u.tensor(storage, offset, size, stride, dtype)


def _rebuild_parameter(u: _Unpickler, data, *_):
    return data


def _rebuild_from_type_v2(u: _Unpickler, func, new_type, args, state=None):
    return func(*args)


_REBUILDERS = {
    "torch._utils._rebuild_tensor": _rebuild_tensor,
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor,
    "torch._utils._rebuild_tensor_v3": _rebuild_tensor_v3,
    "torch._utils._rebuild_parameter": _rebuild_parameter,
    "torch._utils._rebuild_parameter_with_state": _rebuild_parameter,
    "torch._tensor._rebuild_from_type_v2": _rebuild_from_type_v2,
}
# types a pickle may name as the class of a rebuilt tensor (only passed to _rebuild_from_type_v2)
_TENSOR_TYPES = {
    "torch.Tensor": _placeholder("torch.Tensor"),
    "torch._tensor.Tensor": _placeholder("torch.Tensor"),
    "torch.nn.parameter.Parameter": _placeholder("torch.nn.parameter.Parameter"),
}


def _codecs_encode(text, encoding="utf-8", *_):
    """How protocol-2 pickles write ``bytes``: ``_codecs.encode(str, "latin1")``; only latin-1."""
    if not isinstance(text, str) or str(encoding).lower().replace("_", "-") not in ("latin1", "latin-1"):
        return _placeholder("_codecs.encode")(text, encoding)
    return text.encode("latin-1")


_ALLOWED_BUILTINS: dict[str, Any] = {
    "_codecs.encode": _codecs_encode,
    "collections.OrderedDict": _Dict,
    "builtins.set": set,
    "builtins.frozenset": frozenset,
    "builtins.slice": slice,
    "builtins.complex": complex,
    "torch.Size": tuple,
}


def load(path: str | os.PathLike) -> Any:
    """The object in a PyTorch weight file, tensors as NumPy arrays (see the module docstring).

    Raises UserError (one line, naming the file) for a missing file, a file in neither of
    torch's formats, or a truncated or damaged one."""
    source = os.fspath(path)
    if not os.path.exists(source):
        raise UserError(f"PyTorch weight file {source} not found; download it (nothing is downloaded at run time)")
    if os.path.isdir(source):
        raise UserError(f"PyTorch weight file {source} is a folder, not a file")
    try:
        with open(source, "rb") as f:
            head = f.read(4)
            f.seek(0)
            if head.startswith(b"PK"):
                return _load_zip(f, source)
            if head[:1] == b"\x80":
                return _load_legacy(f, source)
    except OSError as e:
        raise UserError(f"cannot read {source}: {e.strerror or e}") from e
    raise UserError(f"{source} is not a PyTorch weight file (neither torch's zip format nor its legacy pickle)")


def _load_zip(f, source: str) -> Any:
    try:
        z = zipfile.ZipFile(f)
    except zipfile.BadZipFile as e:
        raise UserError(f"{source} is truncated or damaged (not a readable zip: {e}); {_REDOWNLOAD}") from e
    with z:
        names = z.namelist()
        pkls = sorted((n for n in names if n.endswith("data.pkl") and n.count("/") <= 1), key=len)
        if not pkls:
            raise UserError(f"{source} is a zip but not a PyTorch weight file (no data.pkl in it)")
        prefix = pkls[0][: -len("data.pkl")]
        byteorder = "little"
        if f"{prefix}byteorder" in names:
            byteorder = _read_member(z, f"{prefix}byteorder", source).decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise UserError(f"{source}: unknown byte order {byteorder!r}; {_REDOWNLOAD}")
        storages: dict[str, _Storage] = {}

        def storage(pid):
            _, stype, key, _location, numel = pid[:5]
            key = str(key)
            if key not in storages:
                dtype = _storage_dtype(stype, source)
                data = np.frombuffer(_read_member(z, f"{prefix}data/{key}", source), np.uint8)
                storages[key] = _Storage(key, dtype, int(numel), data)
            return storages[key]

        return _unpickle(_read_member(z, pkls[0], source), source, storage, byteorder)


def _read_member(z: zipfile.ZipFile, name: str, source: str) -> bytes:
    try:
        return z.read(name)
    except KeyError:
        raise UserError(f"{source} lacks {name}; the file is truncated or damaged: {_REDOWNLOAD}") from None
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as e:  # bad CRC, cut-off member, ...
        raise UserError(f"{source}: cannot read {name} ({e}); the file is truncated or damaged: {_REDOWNLOAD}") from e


def _storage_dtype(stype, source: str) -> _DType:
    if not isinstance(stype, _DType):
        raise UserError(f"{source}: a storage of unknown type {stype!r}; not a weight file this reader knows")
    return stype


def _unpickle(data: bytes | Any, source: str, storage, byteorder: str = "little") -> Any:
    file = io.BytesIO(data) if isinstance(data, bytes) else data
    try:
        return _Unpickler(file, source, storage, byteorder).load()
    except UserError:
        raise
    except RecursionError as e:
        raise UserError(f"{source}: the pickle nests too deeply; not a weight file this reader knows") from e
    except Exception as e:  # EOFError, UnpicklingError, struct/Value/TypeError from odd bytes
        raise UserError(
            f"{source}: cannot unpickle it ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); "
            f"the file is truncated or damaged: {_REDOWNLOAD}"
        ) from e


def _load_legacy(f, source: str) -> Any:
    def plain(pid):
        raise UserError(f"{source}: a storage in a legacy file's header; not a weight file this reader knows")

    magic = _unpickle(f, source, plain)
    if magic != _LEGACY_MAGIC:
        raise UserError(f"{source} is a pickle but not a PyTorch weight file (no torch magic number)")
    protocol = _unpickle(f, source, plain)
    if protocol != 1001:
        raise UserError(f"{source}: legacy PyTorch protocol {protocol!r} is not supported (only 1001)")
    _unpickle(f, source, plain)  # sys info; torch writes legacy storages little-endian on every machine

    # Pass 1: scan the object pickle for its storages' types, then read their bytes.
    start = f.tell()
    found: dict[str, _DType] = {}

    def scan(pid):
        stype, key = pid[1], str(pid[2])
        found[key] = _storage_dtype(stype, source)
        return _Storage(key, found[key], 0, None)

    _unpickle(f, source, scan)
    keys = _unpickle(f, source, plain)
    if not isinstance(keys, list):
        raise UserError(f"{source}: the storage key list is missing; the file is truncated or damaged: {_REDOWNLOAD}")
    data: dict[str, np.ndarray] = {}
    for key in keys:
        key = str(key)
        if key not in found:
            raise UserError(f"{source}: storage {key} is listed but no tensor uses it; {_REDOWNLOAD}")
        head = f.read(8)
        if len(head) < 8:
            raise UserError(f"{source} is truncated (storage {key} is missing): {_REDOWNLOAD}")
        (numel,) = struct.unpack("<q", head)
        nbytes = numel * found[key].numpy(source).itemsize
        raw = f.read(nbytes) if numel >= 0 else b""
        if numel < 0 or len(raw) != nbytes:
            raise UserError(
                f"{source} is truncated (storage {key}: {nbytes} bytes expected, {len(raw)} found): {_REDOWNLOAD}"
            )
        data[key] = np.frombuffer(raw, np.uint8)

    # Pass 2: the object pickle again, now with the storages' bytes.
    f.seek(start)
    views: dict[tuple, _Storage] = {}

    def storage(pid):
        _, stype, key, _location, numel, view = (*pid, None)[:6]
        key = str(key)
        if key not in data:
            raise UserError(f"{source}: storage {key} is missing; the file is truncated or damaged: {_REDOWNLOAD}")
        dtype = _storage_dtype(stype, source)
        if view is None:
            return _Storage(key, dtype, int(numel), data[key])
        view_key, offset, size = str(view[0]), int(view[1]), int(view[2])
        if (view_key, key) not in views:
            item = dtype.numpy(source).itemsize
            views[view_key, key] = _Storage(
                f"{key}[{offset}:{offset + size}]", dtype, size, data[key][offset * item : (offset + size) * item]
            )
        return views[view_key, key]

    return _unpickle(f, source, storage)


def state_dict(
    obj: Any, prefer: Sequence[str] = ("params_ema", "params", "state_dict"), *, source: str = "the weight file"
) -> dict[str, np.ndarray]:
    """The name -> array mapping inside a loaded weight file.

    The first key of `prefer` present in `obj` (BasicSR saves ``{"params": ...}`` or
    ``{"params_ema": ...}``, MMagic ``{"state_dict": ..., "meta": ...}``), else `obj` itself
    if it is a flat name -> array mapping; UserError otherwise, naming the top-level keys."""
    if isinstance(obj, Mapping):
        for key in prefer:
            if key in obj:
                return _flat_arrays(obj[key], source, f"[{key!r}]")
        if obj and all(isinstance(v, np.ndarray) for v in obj.values()):
            return {str(k): v for k, v in obj.items()}
        keys = ", ".join(repr(k) for k in list(obj)[:12]) + (", ..." if len(obj) > 12 else "")
        raise UserError(
            f"{source}: no state dict in it: none of {', '.join(prefer)} and not a name -> tensor mapping "
            f"(top-level keys: {keys or 'none'})"
        )
    raise UserError(f"{source}: expected a dict of tensors, got {_kind(obj)}")


def _flat_arrays(value: Any, source: str, where: str) -> dict[str, np.ndarray]:
    if not isinstance(value, Mapping):
        raise UserError(f"{source}{where}: expected a name -> tensor mapping, got {_kind(value)}")
    bad = [str(k) for k, v in value.items() if not isinstance(v, np.ndarray)]
    if bad:
        raise UserError(
            f"{source}{where}: not a flat name -> tensor mapping ({len(bad)} entries are not tensors, e.g. {bad[0]!r})"
        )
    return {str(k): v for k, v in value.items()}


def _kind(obj: Any) -> str:
    return obj.name if isinstance(obj, Unpickled) else type(obj).__name__


def strip_prefix(sd: Mapping[str, Any], prefix: str, *, required: bool = False) -> dict[str, Any]:
    """The entries of `sd` whose key starts with `prefix` (e.g. ``module.``, ``generator.``,
    ``generator_ema.``), with it removed; the others are dropped. If no key has the prefix,
    `sd` unchanged (as a dict), or UserError when `required`."""
    out = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    if out:
        return out
    if required:
        few = ", ".join(list(sd)[:5])
        raise UserError(f"no key starts with {prefix!r} (keys: {few}{', ...' if len(sd) > 5 else ''})")
    return dict(sd)


if __name__ == "__main__":  # pragma: no cover - a quick look at a file: python -m vsr_jax.pretrained.pth FILE
    for name, value in state_dict(load(sys.argv[1]), source=sys.argv[1]).items():
        print(name, value.dtype, value.shape)
