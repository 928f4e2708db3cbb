"""A published weight file -> a run folder that vsr-eval and vsr-upscale read like a trained run.

`import_weights(FILE, RUN_DIR)` reads a state_dict (a PyTorch ``.pth`` via
`vsr_jax.pretrained.pth`, or an ``.npz`` of name -> array), works out the architecture and
its options from the keys and shapes (or takes ``arch=`` / ``scale=`` / ``options=``),
converts it by name (`convert.state_dict_to_params`), checks every key and shape against
the model built from that config (`convert.check_params`), and only then writes RUN_DIR: the
config (base_config defaults, ``model.*``, ``data.scale``, ``data.num_frames``) and one
Orbax checkpoint at step 0 whose metadata records the source file's name and sha256.
Every refusal is one line (UserError) and leaves nothing on disk; an existing non-empty
RUN_DIR is never overwritten.

Architectures recognised from their keys (BasicSR / Real-ESRGAN module names):

* ``realbasicvsr``: ``image_cleaning.0.main.0`` and ``basicvsr.backward_trunk.main.0`` (×4;
  mid_channels, num_cleaning_blocks, num_propagation_blocks; ``dynamic_refine_thres`` 255
  as published unless given);
* ``basicvsrpp``: ``deform_align.backward_1.*`` (×4, or ×1 for MMagic's same-size models
  without ``feat_extract.main``; mid_channels, num_blocks);
* ``iconvsr``: ``backward_fusion`` and ``edvr.fusion.feat_fusion`` (×4; num_feat, num_block,
  temporal_padding from the EDVR window's width);
* ``basicvsr``: ``spynet.*`` and ``backward_trunk.main.0`` (×4; num_feat, num_block);
* ``edvr``: ``pcd_align.*`` (×4; num_feat, num_frame, deformable_groups, block counts,
  with_tsa, with_predeblur; the clip-end ``padding`` from the registry, else
  ``reflection_circle``);
* ``rrdbnet``: ``body.N.rdb1.*`` (scale from ``conv_first``'s input channels 3/12/48 -> ×4/×2/×1);
* ``edsr``: ``conv_after_body`` (scale from ``upsample.N``);
* ``msrresnet``: ``upconv1`` and ``conv_hr`` (×4 with ``upconv2``, else ×2/×3 by channels);
* ``srvgg``: ``body.N`` convs only (num_conv from the last index, PReLU when ``body.1.weight``
  exists, scale from the last conv's 3·s² channels).

MMagic checkpoints (`vsr_jax.pretrained.mmagic`): ``generator_ema.*`` is taken when present,
else ``generator.*`` (said in a log line and in the run's metadata); MMagic's module names
(``BasicVSRNet``, ``RealBasicVSRNet``, ``SPyNet``'s ConvModules) are renamed to ours first.

Options the weights cannot show come from the registry when the file's name is a published
one, else from ``options``; EDSR's ``res_scale`` is the authors' for their two sizes (0.1 for
256 features × 32 blocks, EDSR_L; else 1, EDSR_M / baseline).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import shutil
from collections.abc import Mapping
from typing import Any

import numpy as np

from vsr_jax.errors import UserError
from vsr_jax.pretrained import download

ARCHS = ("realbasicvsr", "basicvsrpp", "iconvsr", "basicvsr", "edvr", "rrdbnet", "edsr", "msrresnet", "srvgg")
# data.num_frames of video models (BasicSR's test clips; EDVR: its window); image models: 1
VIDEO_FRAMES = {"basicvsr": 7, "realbasicvsr": 7, "iconvsr": 7, "basicvsrpp": 7}
RUN_SCALES = (2, 3, 4, 8)  # what a run's config accepts (config_lib.validate)


@dataclasses.dataclass
class Spec:
    """What a state_dict holds: our model name, scale and options."""

    arch: str
    scale: int
    kwargs: dict[str, Any]
    # where the weights came from in the file, e.g. "MMagic checkpoint: generator_ema (EMA)"
    source: str = dataclasses.field(default="", compare=False)

    @property
    def num_frames(self) -> int:
        if self.arch == "edvr":
            return int(self.kwargs.get("num_frame", 5))
        return VIDEO_FRAMES.get(self.arch, 1)


# ------------------------------------------------------------------------ reading


def read_state_dict(path: str) -> dict[str, np.ndarray]:
    """name -> float array from a ``.pth``/``.pt``/``.ckpt`` (via `pretrained.pth`) or an ``.npz``
    (a GAN checkpoint's generator, MMagic's names renamed to ours)."""
    return read_weights(path)[0]


def read_weights(path: str) -> tuple[dict[str, np.ndarray], str]:
    """(`read_state_dict`'s mapping, a note of where in the file it came from: "" for a plain
    state_dict, else e.g. "MMagic checkpoint: generator_ema (EMA)")."""
    if not os.path.isfile(path):
        raise UserError(f"no weight file {path}")
    ext = os.path.splitext(path)[1].lower()
    if ext == ".npz":
        try:
            with np.load(path, allow_pickle=False) as f:
                sd = {k: np.asarray(f[k]) for k in f.files}
        except Exception as e:  # noqa: BLE001 - a damaged or foreign file
            raise UserError(f"{path} is not a readable .npz ({type(e).__name__}: {str(e)[:120]})") from None
    elif ext in (".pth", ".pt", ".ckpt", ".bin"):
        from vsr_jax.pretrained import pth  # lazily: the reader of PyTorch's zip/pickle format

        sd = dict(pth.state_dict(pth.load(path), prefer=("params_ema", "params", "state_dict"), source=path))
    else:
        raise UserError(f"{path}: expected a PyTorch .pth or an .npz state_dict, not {ext or 'no extension'}")
    from vsr_jax.pretrained import mmagic

    sd = {k: np.asarray(v) for k, v in sd.items() if np.asarray(v).dtype.kind in "fiu"}
    # A GAN checkpoint (MMagic): the generator's weights, its EMA when kept
    sd, generator = mmagic.select_generator(sd)
    notes = []
    if generator:
        notes.append(f"{generator} (EMA)" if generator == "generator_ema" else f"{generator} (no EMA in the file)")
    if sd and all(k.startswith("module.") for k in sd):  # saved from a DataParallel wrapper
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    if mmagic.is_mmagic(sd):
        try:
            sd = mmagic.to_ours(sd)
        except UserError as e:
            raise UserError(f"{path}: {e}") from None
        notes.insert(0, "MMagic module names")
    if not sd:
        raise UserError(f"{path} holds no arrays")
    return sd, ", ".join(notes)


# -------------------------------------------------------------------- inference


def _first_keys(sd: Mapping[str, Any], n: int = 4) -> str:
    keys = list(sd)
    return ", ".join(keys[:n]) + (", …" if len(keys) > n else "")


def _indices(sd: Mapping[str, Any], pattern: str) -> list[int]:
    """The integers N of keys matching `pattern` (a regex with one group), sorted."""
    return sorted({int(m.group(1)) for k in sd if (m := re.fullmatch(pattern, k))})


def _need(sd: Mapping[str, Any], arch: str, *keys: str) -> None:
    for k in keys:
        if k not in sd:
            raise UserError(f"not a {arch} state_dict: no key {k!r} (its first keys: {_first_keys(sd)})")


def _count(sd: Mapping[str, Any], arch: str, pattern: str) -> int:
    found = _indices(sd, pattern)
    if not found:
        raise UserError(f"not a {arch} state_dict: no key like {pattern!r} (its first keys: {_first_keys(sd)})")
    return found[-1] + 1


def _msrresnet(sd) -> Spec:
    _need(sd, "msrresnet", "conv_first.weight", "upconv1.weight", "conv_hr.weight")
    features = sd["conv_first.weight"].shape[0]
    up = sd["upconv1.weight"].shape[0]
    scale = 4 if "upconv2.weight" in sd else {4 * features: 2, 9 * features: 3}.get(up, 0)
    blocks = _count(sd, "msrresnet", r"body\.(\d+)\.conv1\.weight")
    return Spec("msrresnet", scale, {"features": features, "num_blocks": blocks})


def _edsr(sd) -> Spec:
    _need(sd, "edsr", "conv_first.weight", "conv_after_body.weight")
    features = sd["conv_first.weight"].shape[0]
    ups = _indices(sd, r"upsample\.(\d+)\.weight")
    if len(ups) == 1 and sd[f"upsample.{ups[0]}.weight"].shape[0] == 9 * features:
        scale = 3
    else:
        scale = 2 ** len(ups) if ups else 0
    blocks = _count(sd, "edsr", r"body\.(\d+)\.conv1\.weight")
    kwargs = {"features": features, "num_blocks": blocks}
    if (features, blocks) == (256, 32):  # EDSR (Lim et al. 2017) / BasicSR's EDSR_L: residual scaling 0.1
        kwargs["res_scale"] = 0.1
    return Spec("edsr", scale, kwargs)


def _rrdbnet(sd) -> Spec:
    _need(sd, "rrdbnet", "conv_first.weight", "body.0.rdb1.conv1.weight")
    features, in_ch = sd["conv_first.weight"].shape[:2]
    scale = {3: 4, 12: 2, 48: 1}.get(int(in_ch), 0)
    blocks = _count(sd, "rrdbnet", r"body\.(\d+)\.rdb1\.conv1\.weight")
    grow = sd["body.0.rdb1.conv1.weight"].shape[0]
    return Spec("rrdbnet", scale, {"features": features, "num_blocks": blocks, "grow_features": grow})


def _srvgg(sd) -> Spec:
    _need(sd, "srvgg", "body.0.weight")
    convs = [i for i in _indices(sd, r"body\.(\d+)\.weight") if np.ndim(sd[f"body.{i}.weight"]) == 4]
    last = convs[-1]
    if last < 2 or last % 2:
        raise UserError(f"not a srvgg state_dict: its last conv is body.{last} (its first keys: {_first_keys(sd)})")
    out = sd[f"body.{last}.weight"].shape[0]
    s = math.isqrt(out // 3)
    scale = s if 3 * s * s == out else 0
    act = "prelu" if "body.1.weight" in sd else "lrelu"  # relu and leakyrelu have no weights: lrelu assumed
    return Spec("srvgg", scale, {"features": sd["body.0.weight"].shape[0], "num_conv": (last - 2) // 2, "act": act})


def _basicvsr(sd) -> Spec:
    _need(sd, "basicvsr", "backward_trunk.main.0.weight")
    if not any(k.startswith("spynet.") for k in sd):
        raise UserError(f"not a basicvsr state_dict: no spynet.* keys (its first keys: {_first_keys(sd)})")
    num_feat = sd["backward_trunk.main.0.weight"].shape[0]
    blocks = _count(sd, "basicvsr", r"backward_trunk\.main\.2\.(\d+)\.conv1\.weight")
    return Spec("basicvsr", 4, {"num_feat": num_feat, "num_block": blocks})


def _realbasicvsr(sd) -> Spec:
    _need(sd, "realbasicvsr", "image_cleaning.0.main.0.weight", "basicvsr.backward_trunk.main.0.weight")
    mid = sd["image_cleaning.0.main.0.weight"].shape[0]
    cleaning = _count(sd, "realbasicvsr", r"image_cleaning\.0\.main\.2\.(\d+)\.conv1\.weight")
    propagation = _count(sd, "realbasicvsr", r"basicvsr\.backward_trunk\.main\.2\.(\d+)\.conv1\.weight")
    kwargs = {"mid_channels": mid, "num_propagation_blocks": propagation, "num_cleaning_blocks": cleaning}
    return Spec("realbasicvsr", 4, kwargs)


def _iconvsr(sd) -> Spec:
    _need(sd, "iconvsr", "backward_trunk.main.0.weight", "backward_fusion.weight", "edvr.fusion.feat_fusion.weight")
    num_feat = sd["backward_trunk.main.0.weight"].shape[0]
    blocks = _count(sd, "iconvsr", r"backward_trunk\.main\.2\.(\d+)\.conv1\.weight")
    window = sd["edvr.fusion.feat_fusion.weight"].shape[1] // num_feat  # 2·temporal_padding + 1 frames
    return Spec("iconvsr", 4, {"num_feat": num_feat, "num_block": blocks, "temporal_padding": (window - 1) // 2})


def _basicvsrpp(sd) -> Spec:
    _need(sd, "basicvsrpp", "deform_align.backward_1.conv_offset.0.weight", "backbone.backward_1.main.0.weight")
    low = "feat_extract.main.0.weight" in sd  # is_low_res_input: ×4; else MMagic's same-size models
    mid = sd["feat_extract.main.0.weight" if low else "feat_extract.0.weight"].shape[0]
    blocks = _count(sd, "basicvsrpp", r"backbone\.backward_1\.main\.2\.(\d+)\.conv1\.weight")
    kwargs = {"mid_channels": mid, "num_blocks": blocks} | ({} if low else {"is_low_res_input": False})
    return Spec("basicvsrpp", 4 if low else 1, kwargs)


def _edvr(sd) -> Spec:
    _need(sd, "edvr", "conv_l2_1.weight", "pcd_align.cas_dcnpack.conv_offset.weight")
    num_feat = sd["conv_l2_1.weight"].shape[0]
    tsa = "fusion.feat_fusion.weight" in sd
    fusion = sd["fusion.feat_fusion.weight" if tsa else "fusion.weight"]
    kwargs = {
        "num_feat": num_feat,
        "num_frame": fusion.shape[1] // num_feat,
        "deformable_groups": sd["pcd_align.cas_dcnpack.conv_offset.weight"].shape[0] // 27,  # 3 x 9 taps each
        "num_extract_block": _count(sd, "edvr", r"feature_extraction\.(\d+)\.conv1\.weight"),
        "num_reconstruct_block": _count(sd, "edvr", r"reconstruction\.(\d+)\.conv1\.weight"),
        "with_tsa": tsa,
        "with_predeblur": any(k.startswith("predeblur.") for k in sd),
    }
    return Spec("edvr", 4, kwargs)


INFER = {
    "realbasicvsr": _realbasicvsr,
    "basicvsrpp": _basicvsrpp,
    "iconvsr": _iconvsr,
    "basicvsr": _basicvsr,
    "edvr": _edvr,
    "rrdbnet": _rrdbnet,
    "edsr": _edsr,
    "msrresnet": _msrresnet,
    "srvgg": _srvgg,
}


def _looks_like(sd) -> str | None:
    if "image_cleaning.0.main.0.weight" in sd and "basicvsr.backward_trunk.main.0.weight" in sd:
        return "realbasicvsr"
    if "deform_align.backward_1.conv_offset.0.weight" in sd:
        return "basicvsrpp"
    if "backward_fusion.weight" in sd and "edvr.fusion.feat_fusion.weight" in sd:
        return "iconvsr"
    if "backward_trunk.main.0.weight" in sd and any(k.startswith("spynet.") for k in sd):
        return "basicvsr"
    if "pcd_align.cas_dcnpack.conv_offset.weight" in sd:
        return "edvr"
    if "body.0.rdb1.conv1.weight" in sd:
        return "rrdbnet"
    if "conv_after_body.weight" in sd:
        return "edsr"
    if "upconv1.weight" in sd and "conv_hr.weight" in sd:
        return "msrresnet"
    if "body.0.weight" in sd and "conv_first.weight" not in sd:
        return "srvgg"
    return None


def infer_spec(sd: Mapping[str, Any], arch: str | None = None) -> Spec:
    """The architecture (unless given), scale and shape options of a state_dict."""
    if arch is None:
        arch = _looks_like(sd)
        if arch is None and "basic_module.0.basic_module.0.weight" in sd:
            raise UserError(
                "this is a SpyNet optical-flow state_dict, not a super-resolution model: it is the flow part "
                "of basicvsr / realbasicvsr (their own files include it)"
            )
        if arch is None:
            raise UserError(
                f"no known architecture ({', '.join(ARCHS)}) has these keys (first: {_first_keys(sd)}); "
                "name one with --arch"
            )
    if arch not in INFER:
        raise UserError(f"--arch={arch}: importing is supported for {', '.join(ARCHS)}")
    return INFER[arch](sd)


def parse_options(text: str | None) -> dict[str, Any]:
    """``"res_scale=0.1,act=prelu"`` -> {"res_scale": 0.1, "act": "prelu"} (ints, floats,
    true/false, else strings)."""
    out: dict[str, Any] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        if "=" not in item:
            raise UserError(f"--options: expected k=v, got {item.strip()!r}")
        k, v = (s.strip() for s in item.split("=", 1))
        value: Any = v
        if v.lower() in ("true", "false"):
            value = v.lower() == "true"
        else:
            for cast in (int, float):
                try:
                    value = cast(v)
                    break
                except ValueError:
                    pass
        out[k] = value
    return out


def _registry_entry(path: str):
    from vsr_jax.pretrained import registry

    name = os.path.basename(path)
    return next((e for e in registry.ENTRIES.values() if e.filename == name), None)


# --------------------------------------------------------------------- the run


def make_config(spec: Spec):
    """A base_config for `spec`: model.name and options, data.scale, data.num_frames."""
    from vsr_jax import config_lib, models
    from vsr_jax.errors import ConfigError

    config = config_lib.base_config()
    config.model.name = spec.arch
    for k, v in spec.kwargs.items():
        config.model[k] = v
    config.data.scale = int(spec.scale)
    config.data.num_frames = spec.num_frames
    config_lib.check_schema(config)
    try:
        models.create_model(spec.arch, spec.scale, dict(spec.kwargs))
    except (KeyError, TypeError, ValueError) as e:
        raise ConfigError(f"{spec.arch} x{spec.scale} {spec.kwargs}: {str(e).strip(chr(39) + chr(34))}") from None
    return config


def abstract_params(config) -> Any:
    """The params of the config's model as ShapeDtypeStructs (nothing allocated)."""
    import jax
    import jax.numpy as jnp

    from vsr_jax import config_lib

    model = config_lib.build_model(config)
    t = max(int(config.data.num_frames), 1)
    lr = jax.ShapeDtypeStruct((1, t, 32, 32, 3), jnp.float32)
    return jax.eval_shape(model.init, jax.random.key(0), lr)["params"]


def _refuse_existing(run_dir: str) -> None:
    if os.path.exists(run_dir) and not (os.path.isdir(run_dir) and not os.listdir(run_dir)):
        raise UserError(f"{run_dir} already exists and is not empty; choose a new run folder (nothing is overwritten)")


def convert_for(sd: Mapping[str, Any], spec: Spec, what: str) -> dict:
    """`sd` converted for `spec`'s model (the PReLU slopes and SpyNet buffers of its arch)."""
    from vsr_jax.pretrained import convert

    prelu, skip = frozenset(), ()
    if spec.arch == "srvgg" and spec.kwargs.get("act", "prelu") == "prelu":
        from vsr_jax.models import srvgg

        prelu = srvgg.prelu_modules(int(spec.kwargs.get("num_conv", 16)))
    if spec.arch in ("basicvsr", "realbasicvsr", "iconvsr", "basicvsrpp"):
        from vsr_jax.models import spynet

        prefix = "basicvsr.spynet." if spec.arch == "realbasicvsr" else "spynet."
        try:
            spynet.check_buffers(sd, prefix)
        except ValueError as e:
            raise UserError(f"{what}: {e}") from None
        skip = spynet.buffer_keys(prefix)
    return convert.state_dict_to_params(sd, prelu=prelu, skip=skip)


def prepare(
    path: str,
    *,
    arch: str | None = None,
    scale: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> tuple[Spec, Any, dict]:
    """(spec, config, params) of the weight file `path`, in memory: read, the architecture
    and options worked out (the registry's when the file's name is a published one), converted
    and checked against the model of that config. UserError (one line) when it does not fit."""
    from vsr_jax.pretrained import convert

    what = os.path.basename(path)
    sd, source = read_weights(path)
    if source:
        logging.info("%s: %s", what, source)
    entry = _registry_entry(path)
    if entry is not None and arch in (None, entry.arch):
        spec = Spec(entry.arch, entry.scale, dict(entry.kwargs))
    else:
        spec = infer_spec(sd, arch)
    spec.source = source
    if scale is not None:
        spec.scale = int(scale)
    spec.kwargs.update(options or {})
    if not spec.scale:
        raise UserError(f"{what}: the scale of this {spec.arch} cannot be told from its shapes; give --scale")
    if spec.scale not in RUN_SCALES:
        raise UserError(
            f"{what} is a x{spec.scale} {spec.arch}; a run folder takes x{', x'.join(map(str, RUN_SCALES))}"
        )
    config = make_config(spec)
    params = convert_for(sd, spec, what)
    convert.check_params(params, abstract_params(config), what)
    return spec, config, params


def load_weights(
    path: str,
    *,
    arch: str | None = None,
    scale: int | None = None,
    options: Mapping[str, Any] | None = None,
    dtype: str | None = None,
) -> tuple[Any, Any, dict]:
    """(config, model, params) of the weight file `path` with no run folder (`prepare`, then
    the model built from the config; `dtype="bfloat16"` computes in bfloat16)."""
    from vsr_jax import config_lib

    _, config, params = prepare(path, arch=arch, scale=scale, options=options)
    model = config_lib.build_model(config, **({"dtype": dtype} if dtype else {}))
    return config, model, params


def import_weights(
    path: str,
    run_dir: str,
    *,
    arch: str | None = None,
    scale: int | None = None,
    options: Mapping[str, Any] | None = None,
) -> tuple[Spec, dict]:
    """Writes `run_dir` from the weight file `path` (see the module docstring); returns the
    spec and the converted params. UserError (one line, nothing written) when the file does
    not fit, the config would not validate, or `run_dir` exists and is not empty."""
    from vsr_jax import checkpointing

    _refuse_existing(run_dir)
    what = os.path.basename(path)
    entry = _registry_entry(path)
    spec, config, params = prepare(path, arch=arch, scale=scale, options=options)
    _refuse_existing(run_dir)  # again: just before writing
    metadata = {
        "imported_from": {
            "file": what,
            "sha256": download.sha256_file(path),
            "arch": spec.arch,
            "scale": spec.scale,
            "options": dict(spec.kwargs),
            "registry": entry.name if entry is not None else "",
            "weights": spec.source,  # e.g. "MMagic module names, generator_ema (EMA)"
        }
    }
    existed = os.path.isdir(run_dir)
    try:
        checkpointing.write_run(run_dir, config, params, step=0, metadata=metadata)
    except BaseException:
        if existed:  # it was empty: leave it empty
            for name in os.listdir(run_dir):
                shutil.rmtree(os.path.join(run_dir, name), ignore_errors=True)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    return spec, params
