"""MMagic (formerly MMEditing) checkpoints: their file layout and module names -> ours.

An MMagic checkpoint (``torch.save`` by mmengine's / mmcv's runner) is a dict with
``meta`` (config text, versions, NumPy scalars, …), ``state_dict`` and often
``message_hub`` / ``optimizer``; `vsr_jax.pretrained.pth` reads it without running
anything in it (classes such as mmengine's ``HistoryBuffer`` or NumPy's array rebuilders
load as inert placeholders) and returns ``state_dict``. That holds the whole editor model:
``generator.<key>``, ``generator_ema.<key>`` when the model keeps an exponential moving
average (``is_use_ema``: RealESRGAN, RealBasicVSR; MMagic tests with it), the
discriminator's ``discriminator.<key>`` and buffers such as ``step_counter``.
`select_generator` takes ``generator_ema.*`` when present, else ``generator.*``.

`to_ours` renames MMagic's modules onto our ports (the computation is the same, see
`vsr_jax.models.realbasicvsr`):

* ``BasicVSRNet`` -> `basicvsr` (BasicSR's names): ``backward_resblocks`` / ``forward_resblocks``
  -> ``backward_trunk`` / ``forward_trunk``; ``upsample{1,2}.upsample_conv`` (PixelShufflePack)
  -> ``upconv{1,2}``; ``fusion``, ``conv_hr``, ``conv_last`` as they are;
* ``SPyNet`` (also the standalone ``spynet_20210409-c6c1bd09.pth``): ConvModule
  ``basic_module.L.basic_module.K.conv.*`` (K = 0…4, the ReLU inside each ConvModule) ->
  BasicSR's ``basic_module.L.basic_module.{2K}.*`` (ReLUs between, so J = 0, 2, …, 8);
* ``RealBasicVSRNet`` -> `realbasicvsr`: ``image_cleaning.*`` as it is, ``basicvsr.*`` by the
  BasicVSRNet rules;
* ``BasicVSRPlusPlusNet`` -> `basicvsrpp` (`vsr_jax.models.basicvsrpp`): the same two rules
  (``spynet.*``, ``upsample{1,2}.upsample_conv`` -> ``upconv{1,2}``); ``feat_extract``,
  ``deform_align.<branch>`` (the deformable conv's own ``weight`` / ``bias`` and its
  ``conv_offset.{0,2,4,6}``), ``backbone.<branch>``, ``reconstruction``, ``conv_hr``,
  ``conv_last`` as they are.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from vsr_jax.errors import UserError

GENERATORS = ("generator_ema.", "generator.")  # in order of preference

_SPYNET_CONV = re.compile(r"(^|\.)basic_module\.(\d+)\.basic_module\.(\d+)\.conv\.(weight|bias)$")
_RENAMES = (
    (re.compile(r"(^|\.)backward_resblocks\."), r"\1backward_trunk."),
    (re.compile(r"(^|\.)forward_resblocks\."), r"\1forward_trunk."),
    (re.compile(r"(^|\.)upsample1\.upsample_conv\."), r"\1upconv1."),
    (re.compile(r"(^|\.)upsample2\.upsample_conv\."), r"\1upconv2."),
)


def select_generator(sd: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """(the generator's entries without their prefix, which: "generator_ema" / "generator"),
    or (`sd` as it is, "") when no key has either prefix. The discriminator's and other
    entries are dropped."""
    for prefix in GENERATORS:
        out = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
        if out:
            return out, prefix[:-1]
    return dict(sd), ""


def is_mmagic(sd: Mapping[str, Any]) -> bool:
    """Whether a (generator's) state_dict uses MMagic's module names (any key `to_ours` renames)."""
    return any(_SPYNET_CONV.search(k) or any(p.search(k) for p, _ in _RENAMES) for k in sd)


def rename(key: str) -> str:
    """One MMagic key -> ours (see the module docstring); other keys unchanged."""
    m = _SPYNET_CONV.search(key)
    if m:
        lead, level, k, leaf = m.groups()
        key = f"{key[: m.start()]}{lead}basic_module.{level}.basic_module.{2 * int(k)}.{leaf}"
    for pattern, repl in _RENAMES:
        key = pattern.sub(repl, key)
    return key


def to_ours(sd: Mapping[str, Any]) -> dict[str, Any]:
    """`sd` with every key `rename`d (UserError if two keys would collide)."""
    out: dict[str, Any] = {}
    for k, v in sd.items():
        new = rename(k)
        if new in out:
            raise UserError(f"MMagic keys {k!r} and another both map to {new!r}; is this one model's state_dict?")
        out[new] = v
    return out


def spynet_params(sd: Mapping[str, Any], prefix: str = "") -> dict:
    """Params of `vsr_jax.models.spynet.SpyNet` from a SPyNet state_dict in MMagic's names
    (``spynet_20210409-c6c1bd09.pth``, or the ``spynet.`` part of a BasicVSRNet with
    `prefix` ``"spynet."``); its ``mean`` / ``std`` buffers, if any, must be ImageNet's.
    Keys outside `prefix` are ignored; UserError (one line) when a conv is missing or extra."""
    import jax

    from vsr_jax.models import spynet
    from vsr_jax.pretrained import convert

    sd, _ = select_generator(sd)
    part = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
    try:
        spynet.check_buffers(part)
    except ValueError as e:
        raise UserError(str(e)) from None
    params = convert.state_dict_to_params(to_ours(part), skip=spynet.buffer_keys())
    abstract = jax.eval_shape(
        spynet.SpyNet().init, jax.random.key(0), *(jax.ShapeDtypeStruct((1, 32, 32, 3), "float32"),) * 2
    )["params"]
    convert.check_params(params, abstract, "the SPyNet state_dict")
    return params
