"""Loading pretrained VGG16/VGG19 weights for `vsr_jax.models.vgg.VGGFeatures`.

`load_vgg_params(path, depth)` returns ``(params, input_mode)``: ``params`` is
``{"conv1_1": {"kernel": (3, 3, Cin, Cout) HWIO, "bias": (Cout,)}, ...}`` as float32 numpy
arrays for every conv of the network, to be used as ``{"params": params}``, and
``input_mode`` is the input convention the weights were trained with: pass it to
``VGGFeatures(input_mode=...)``. The format is recognised from the file's contents:

* Keras applications weights (HDF5), e.g. ``vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5``
  from ``KERAS_URLS`` (the full files with the top layers load too; their dense layers are
  ignored). One group per conv, ``block{b}_conv{c}`` -> ``conv{b}_{c}``, at the root (or under
  ``model_weights``, as a whole model saved by Keras 2), holding the kernel and bias datasets
  under either of their Keras names: ``block1_conv1_W_1:0`` / ``block1_conv1_b_1:0`` (Keras 1,
  the published files) or ``block1_conv1/kernel:0`` / ``block1_conv1/bias:0`` (Keras 2's
  ``save_weights``). Kernels are HWIO already. (Keras 3 ``.weights.h5`` files name groups by
  layer class, not ``block1_conv1``, and are not read.) These weights were converted from the
  original Caffe model: ``input_mode="caffe"`` (BGR, 0–255, minus the Caffe mean).
* torchvision state dicts (``.pth``), e.g. ``vgg19-dcbb9e9d.pth`` from ``TORCH_URLS`` (BasicSR's
  weights): ``features.{i}.weight`` (OIHW, transposed to HWIO) and ``features.{i}.bias``, where
  ``i`` counts torchvision's ``features`` Sequential (conv, ReLU, ..., MaxPool), so VGG16 and
  VGG19 number their convs differently (`torch_feature_indices`); ``classifier.*`` is
  ignored. ``input_mode="torch"`` (RGB, ImageNet mean/std). Read without torch by
  `vsr_jax.pretrained.pth` (both of torch's formats; nothing in the file is executed).
* our ``.npz`` (written by `save_vgg_params` / the converter): ``conv1_1/kernel`` (HWIO),
  ``conv1_1/bias``, ... and ``input_mode``, a 0-d string array.

A name instead of a path, ``"vgg19"`` or ``"vgg16"`` (``""``: ``vgg{depth}``), is torchvision's
file of that depth (`TORCH_URLS`, as BasicSR's perceptual loss uses), fetched once into the
weights cache by `vsr_jax.pretrained.download.fetch` (sha256 prefix of its name verified) and
read from there afterwards; offline, one line gives the URL and the exact path to put the file
at, or a file of one's own can be named instead (`--config.loss.vgg_weights=FILE`). A file
that exists under the name itself (``./vgg19``) is read as a file.

Every problem (missing file, unknown format, a layer missing for the depth, a file of the
other depth, wrong shapes) is a one-line `vsr_jax.errors.UserError`.
"""

from __future__ import annotations

import functools
import math
import os
import pathlib
import re
import zipfile
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vsr_jax import fileio
from vsr_jax.errors import UserError
from vsr_jax.models.vgg import INPUT_MODES, VGG_BLOCKS, VGG_WIDTHS, vgg_conv_names, vgg_param_shapes

KERAS_URLS = {
    16: "https://storage.googleapis.com/tensorflow/keras-applications/vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
    19: "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
}
TORCH_URLS = {
    16: "https://download.pytorch.org/models/vgg16-397923af.pth",
    19: "https://download.pytorch.org/models/vgg19-dcbb9e9d.pth",
}
TORCH_NAMES = {"vgg16": 16, "vgg19": 19}  # names that fetch TORCH_URLS[depth] into the weights cache
FORMAT_INPUT_MODES = {"keras": "caffe", "torch": "torch"}

_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_ZIP_MAGIC = b"PK\x03\x04"
_CONVERT_HINT = "python -m vsr_jax.tools.convert_vgg IN OUT.npz"

Params = dict[str, dict[str, np.ndarray]]


def keras_layer_name(conv_name: str) -> str:
    """'conv3_2' -> 'block3_conv2'."""
    b, c = conv_name[4:].split("_")
    return f"block{b}_conv{c}"


def torch_feature_indices(depth: int) -> dict[str, int]:
    """{conv name: index in torchvision's ``vgg{depth}().features``} (conv, ReLU per conv; a pool per block)."""
    indices, i = {}, 0
    for name in vgg_conv_names(depth):
        if name.endswith("_1") and name != "conv1_1":
            i += 1  # the previous block's MaxPool2d
        indices[name] = i
        i += 2  # Conv2d, ReLU
    return indices


def torch_state_dict_to_params(
    state_dict: Mapping[str, object],
    depth: int | None = None,
    widths: Sequence[int] | None = None,
    *,
    source: str = "state dict",
) -> Params:
    """A torchvision VGG state dict (numpy arrays or tensors) -> checked params.

    ``features.{i}.weight`` (Cout, Cin, 3, 3) OIHW becomes ``params[conv]["kernel"]``
    (3, 3, Cin, Cout) HWIO, ``features.{i}.bias`` ``["bias"]``, with ``i`` from
    `torch_feature_indices`; other keys are ignored. ``depth`` None: from the number of
    convs in ``features`` (13: VGG16, 16: VGG19). ``widths``: as `load_vgg_params`.
    """
    found, depth = _torch_found(state_dict, depth, source)
    return _check(found, depth, widths, source)


def fetch_torchvision(depth: int, *, progress: bool = True, cache_dir: str | os.PathLike | None = None) -> str:
    """The path of torchvision's VGG{depth} file in the weights cache, downloaded on first use
    (`TORCH_URLS`; the sha256 prefix in its name is checked). UserError (one line) offline."""
    from vsr_jax.pretrained import download

    if depth not in TORCH_URLS:
        raise UserError(f"VGG depth must be 16 or 19, got {depth!r}")
    try:
        return download.fetch(TORCH_URLS[depth], progress=progress, cache_dir=cache_dir)
    except UserError as e:
        raise UserError(
            f"VGG{depth} weights for the perceptual loss: {e}; or give a weight file of your own with "
            "--config.loss.vgg_weights=FILE (Keras .h5, torchvision .pth or vsr_jax .npz)"
        ) from None


def resolve_vgg_weights(setting: str | os.PathLike, depth: int | None = None) -> pathlib.Path:
    """The file a ``loss.vgg_weights`` setting names: a path (``~`` expanded), or for ``""``,
    ``"vgg16"`` or ``"vgg19"`` (when no such file exists) torchvision's file of that depth
    (``""``: ``depth``, default 19) from the weights cache, fetched on first use."""
    text = os.fspath(setting)
    if not text:
        return pathlib.Path(fetch_torchvision(depth or 19))
    if text in TORCH_NAMES and not os.path.lexists(text):
        return pathlib.Path(fetch_torchvision(TORCH_NAMES[text]))
    return pathlib.Path(os.path.expanduser(text))


def load_vgg_params(
    path: str | os.PathLike, depth: int | None = None, widths: Sequence[int] | None = None
) -> tuple[Params, str]:
    """Reads a VGG weight file (Keras .h5, torchvision .pth or our .npz) -> ``(params, input_mode)``.

    ``path``: a file, or a name (``"vgg19"``, ``"vgg16"``; ``""``: ``vgg{depth}``) for
    torchvision's file, fetched into the weights cache on first use (`resolve_vgg_weights`).
    ``depth``: 16 or 19, None to take it from the file. ``widths``: the five block widths the
    model expects (`VGGFeatures.widths`); None accepts any consistent widths (the file's).
    Raises UserError for a missing or unreadable file, a layer missing for ``depth``, a file
    of the other depth, or shapes that do not match.
    """
    if depth is not None and depth not in VGG_BLOCKS:
        raise UserError(f"VGG depth must be 16 or 19, got {depth!r}")
    path = resolve_vgg_weights(path, depth)
    source = str(path)
    kind = _sniff(path, depth)
    if kind == "keras":
        found, depth = _read_keras(path, depth)
        input_mode = FORMAT_INPUT_MODES["keras"]
    elif kind == "torch":
        found, depth = _torch_found(_read_torch(path), depth, source)
        input_mode = FORMAT_INPUT_MODES["torch"]
    else:
        found, depth, input_mode = _read_npz(path, depth)
    return _check(found, depth, widths, source), input_mode


def save_vgg_params(path: str | os.PathLike, params: Params, input_mode: str) -> None:
    """Writes ``params`` + ``input_mode`` as our .npz, atomically (a temp file renamed into place)."""
    if input_mode not in INPUT_MODES:
        raise UserError(f"VGG input_mode must be one of {INPUT_MODES}, got {input_mode!r}")
    path = pathlib.Path(path)
    if not path.parent.is_dir():
        raise UserError(f"cannot write {path}: folder {path.parent} does not exist")
    arrays = {f"{layer}/{k}": np.asarray(v, np.float32) for layer, p in params.items() for k, v in p.items()}
    arrays["input_mode"] = np.array(input_mode)
    try:
        with fileio.atomic_write(path, "wb") as f:
            np.savez(f, **arrays)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from e


def random_vgg_params(depth: int, key, widths: Sequence[int] | None = None) -> Params:
    """Random VGG weights (He-normal kernels, zero biases) with the loaded files' layout.

    Only for tests and configs that explicitly allow random VGG features (the caller warns:
    random features make the perceptual loss a much weaker signal). jnp float32 arrays.
    """
    shapes = vgg_param_shapes(depth, VGG_WIDTHS if widths is None else widths)
    return _random_params(key, tuple((name, s["kernel"], s["bias"]) for name, s in shapes.items()))


@functools.partial(jax.jit, static_argnums=1)
def _random_params(key, layout):
    # one normal draw sliced into kernels: one small program (a draw per shape compiles ~10× longer)
    z = jax.random.normal(key, (sum(math.prod(k) for _, k, _ in layout),), jnp.float32)
    params, at = {}, 0
    for name, k, b in layout:
        std = np.float32(np.sqrt(2.0 / (k[0] * k[1] * k[2])))
        params[name] = {"kernel": z[at : at + math.prod(k)].reshape(k) * std, "bias": jnp.zeros(b, jnp.float32)}
        at += math.prod(k)
    return params


def params_depth(params: Mapping[str, object]) -> int:
    """19 if ``params`` has VGG19's ``conv3_4``, else 16."""
    return 19 if "conv3_4" in params else 16


def params_widths(params: Params) -> tuple[int, ...]:
    """The five block widths of loaded ``params`` (for ``VGGFeatures(widths=...)``)."""
    return tuple(int(params[f"conv{b}_1"]["bias"].shape[0]) for b in range(1, 6))


# --- readers: each returns {conv name: (kernel HWIO, bias, label for messages)} -------------------


def _sniff(path: pathlib.Path, depth: int | None) -> str:
    if not path.exists():
        d = depth or 19
        raise UserError(
            f"VGG weight file {path} not found; give the path of the Keras VGG{d} weights {KERAS_URLS[d]} "
            f"or of torchvision's {TORCH_URLS[d]}, or the name vgg{d} to download torchvision's into the "
            "weights cache"
        )
    if path.is_dir():
        raise UserError(f"VGG weight file {path} is a folder, not a file")
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except OSError as e:
        raise UserError(f"cannot read VGG weight file {path}: {e.strerror or e}") from e
    if head == _HDF5_MAGIC:
        return "keras"
    if head.startswith(_ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as z:
                names = z.namelist()
        except (zipfile.BadZipFile, OSError) as e:
            raise UserError(f"cannot read VGG weight file {path}: {e}") from e
        if names and all(n.endswith(".npy") for n in names):
            return "npz"
        if any(n.endswith("data.pkl") for n in names):
            return "torch"
    elif head[:1] == b"\x80":  # torch's legacy (pickle) format
        return "torch"
    raise UserError(f"{path} is not a VGG weight file this loader knows (Keras .h5, torchvision .pth or vsr_jax .npz)")


def _read_keras(path: pathlib.Path, depth: int | None):
    import h5py

    source = str(path)
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise UserError(f"cannot read {path} as HDF5: {e}") from e
    with f:
        root = f
        if "block1_conv1" not in root and isinstance(root.get("model_weights"), h5py.Group):
            root = root["model_weights"]  # a whole model saved by Keras 2
        present = {n for n in root if re.fullmatch(r"block\d_conv\d", n)}
        file_depth = 19 if "block3_conv4" in present else 16 if "block5_conv3" in present else None
        depth = _resolve_depth(depth, file_depth, source)
        if file_depth == 19 and depth == 16:
            _other_depth(source, "block3_conv4", depth)
        found = {}
        for name in vgg_conv_names(depth):
            layer = keras_layer_name(name)
            if layer not in present:
                _missing(source, layer, depth, file_depth)
            found[name] = (*_keras_kernel_bias(root[layer], source, layer), layer)
    return found, depth


def _keras_kernel_bias(group, source: str, layer: str):
    """The (kernel, bias) datasets of one Keras layer group, by name, else by rank."""
    import h5py

    datasets = []
    group.visititems(lambda n, obj: datasets.append((n, obj)) if isinstance(obj, h5py.Dataset) else None)

    def pick(patterns, ndim):
        named = [d for n, d in datasets if any(re.search(p, n.rsplit("/", 1)[-1]) for p in patterns)]
        if len(named) == 1:
            return named[0]
        ranked = [d for _, d in datasets if d.ndim == ndim]
        if len(ranked) == 1:
            return ranked[0]
        names = ", ".join(n for n, _ in datasets) or "none"
        raise UserError(f"{source}: layer {layer}: cannot tell its kernel and bias apart (datasets: {names})")

    kernel = pick((r"(^|_)W(_\d+)?:0$", r"^kernel(:0)?$"), 4)
    bias = pick((r"(^|_)b(_\d+)?:0$", r"^bias(:0)?$"), 1)
    return np.asarray(kernel[()], np.float32), np.asarray(bias[()], np.float32)


def _read_torch(path: pathlib.Path):
    from vsr_jax.pretrained import pth  # torch-free and restricted: runs no code from the file

    state = pth.load(path)
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise UserError(f"{path}: expected a torchvision VGG state dict, got {type(state).__name__}")
    return state


def _torch_found(state_dict: Mapping[str, object], depth: int | None, source: str):
    convs = sorted(
        int(m.group(1)) for k in state_dict if (m := re.fullmatch(r"features\.(\d+)\.weight", str(k))) is not None
    )
    file_depth = next((d for d in VGG_BLOCKS if convs == sorted(torch_feature_indices(d).values())), None)
    depth = _resolve_depth(depth, file_depth, source)
    if file_depth == 19 and depth == 16:
        _other_depth(source, "features.16.weight (conv3_4)", depth)
    found = {}
    for name, i in torch_feature_indices(depth).items():
        w, b = f"features.{i}.weight", f"features.{i}.bias"
        label = f"{name} ({w})"
        if w not in state_dict or b not in state_dict:
            _missing(source, label, depth, file_depth)
        kernel = _as_numpy(state_dict[w])
        if kernel.ndim != 4:
            raise UserError(f"{source}: layer {label}: expected a 4-d OIHW kernel, got shape {kernel.shape}")
        found[name] = (oihw_to_hwio(kernel), _as_numpy(state_dict[b]), label)
    return found, depth


def oihw_to_hwio(kernel: np.ndarray) -> np.ndarray:
    """A PyTorch conv kernel (Cout, Cin, kh, kw) -> (kh, kw, Cin, Cout), as `nn.Conv` wants it."""
    return np.ascontiguousarray(np.asarray(kernel).transpose(2, 3, 1, 0))


def _read_npz(path: pathlib.Path, depth: int | None):
    source = str(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as e:
        raise UserError(f"cannot read {path} as .npz: {e}") from e
    if "input_mode" not in arrays:
        raise UserError(f"{path} has no 'input_mode' entry (one of {INPUT_MODES}); write it with {_CONVERT_HINT}")
    input_mode = str(arrays.pop("input_mode"))
    if input_mode not in INPUT_MODES:
        raise UserError(f"{path}: input_mode must be one of {INPUT_MODES}, got {input_mode!r}")
    present = {k.split("/")[0] for k in arrays}
    file_depth = 19 if "conv3_4" in present else 16 if "conv5_3" in present else None
    depth = _resolve_depth(depth, file_depth, source)
    if file_depth == 19 and depth == 16:
        _other_depth(source, "conv3_4", depth)
    found = {}
    for name in vgg_conv_names(depth):
        if f"{name}/kernel" not in arrays or f"{name}/bias" not in arrays:
            _missing(source, f"{name}/kernel", depth, file_depth)
        found[name] = (arrays[f"{name}/kernel"], arrays[f"{name}/bias"], name)
    return found, depth, input_mode


# --- checks ----------------------------------------------------------------------------------------


def _resolve_depth(depth: int | None, file_depth: int | None, source: str) -> int:
    if depth is not None:
        return depth
    if file_depth is None:
        raise UserError(f"cannot tell whether {source} holds VGG16 or VGG19 weights; give the depth (16 or 19)")
    return file_depth


def _missing(source: str, label: str, depth: int, file_depth: int | None):
    hint = f" (the file looks like VGG{file_depth}: use depth {file_depth})" if file_depth not in (None, depth) else ""
    raise UserError(f"{source}: layer {label} missing; VGG{depth} needs it{hint}")


def _other_depth(source: str, label: str, depth: int):
    raise UserError(f"{source} holds VGG19 weights (it has {label}), not VGG{depth}: use depth 19")


def _as_numpy(value) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu().float().numpy()
    return np.asarray(value, np.float32)


def _check(found, depth: int, widths: Sequence[int] | None, source: str) -> Params:
    """Checks kernel/bias shapes against ``widths`` (None: the file's, from each block's first
    conv, so the layers must fit each other) -> params (float32 numpy)."""
    if widths is None:
        widths = []
        for b in range(1, 6):
            _, bias, label = found[f"conv{b}_1"]
            if np.ndim(bias) != 1:
                raise UserError(f"{source}: layer {label}: bias shape {np.shape(bias)}, expected (Cout,)")
            widths.append(np.shape(bias)[0])
    expected = vgg_param_shapes(depth, widths)
    params = {}
    for name, (kernel, bias, label) in found.items():
        kernel, bias = np.asarray(kernel, np.float32), np.asarray(bias, np.float32)
        want_k, want_b = expected[name]["kernel"], expected[name]["bias"]
        if kernel.shape != want_k:
            raise UserError(
                f"{source}: layer {label}: kernel shape {kernel.shape} (HWIO), expected {want_k} for VGG{depth}"
                f" with widths {tuple(widths)}"
            )
        if bias.shape != want_b:
            raise UserError(f"{source}: layer {label}: bias shape {bias.shape}, expected {want_b} for VGG{depth}")
        params[name] = {"kernel": kernel, "bias": bias}
    return params
