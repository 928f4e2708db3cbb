"""RealBasicVSR, weight for weight as MMagic 1.2.0's `RealBasicVSRNet`
(``mmagic/models/editors/real_basicvsr/real_basicvsr_net.py``).

Chan et al., "Investigating Tradeoffs in Real-World Video Super-Resolution" (CVPR 2022).
An image cleaning module in front of BasicVSR:

* cleaning (``image_cleaning``, an ``nn.Sequential``): ``image_cleaning.0`` is MMagic's
  ``ResidualBlocksWithInputConv(3, mid_channels, num_cleaning_blocks)`` (3×3 conv ``main.0``,
  LeakyReLU(0.1), ``main.2.{i}`` residual blocks conv1 → ReLU → conv2, + input: the same
  module as BasicSR's ``ConvResidualBlocks``, `basicvsr.ConvResidualBlocks` here), then
  ``image_cleaning.1`` a 3×3 conv to 3 channels: a residue added to every frame;
* the cleaning is applied again while the mean absolute residue (over the whole batch: all
  clips, frames, pixels and channels) is at least ``dynamic_refine_thres / 255``, at most 3
  times in all (the authors': ``for _ in range(3): … if mean(|residues|) < thres: break``);
  the frames are in [0, 1], so the published setting 255 is a threshold of 1.0, which a
  trained cleaner's residues stay far below: one pass. MMagic's config says "change to 5 for
  test"; the RealBasicVSR authors' own inference config keeps 255;
* then MMagic's ``BasicVSRNet(mid_channels, num_propagation_blocks)`` on the cleaned
  frames: computationally BasicSR's BasicVSR (`vsr_jax.models.basicvsr.BasicVSR`, reused
  here as ``basicvsr``): the same SPyNet (ConvModule = conv + ReLU; its zero initial flow
  at 1/32 size is BasicSR's upsampled zero flow), the same propagation, ``PixelShufflePack``
  = conv + pixel shuffle as BasicSR's ``upconv1/2``, the same LeakyReLUs and bilinear ×4
  base. MMagic's ``BasicVSRNet`` reuses the backward flows, flipped, for a mirror-extended
  clip (frame i equal to frame t-1-i): those are the flows it would compute, so nothing
  differs.

``is_sequential_cleaning`` (frame by frame, to save memory) and ``is_fix_cleaning`` (frozen
in training) change no output, so they are not options here. MMagic's parameter names
differ from BasicSR's inside ``basicvsr`` (``backward_resblocks``, ``upsample1.upsample_conv``,
SPyNet's ConvModule ``.conv.``): `vsr_jax.pretrained.mmagic.to_ours` renames them.

Only ×4. Shapes: (N, T, h, w, 3) in [0, 1] -> (N, T, 4h, 4w, 3), float32, not clipped.
The repeated cleaning is a data-dependent branch (``nn.cond``: a second and third pass run
only when needed, and gradients go through it).
"""

from __future__ import annotations

from typing import Any, ClassVar

import flax.linen as nn
import jax.numpy as jnp

from vsr_jax.models import layers, register
from vsr_jax.models.basicvsr import BasicVSR, ConvResidualBlocks

MAX_CLEANING = 3  # the authors' "at most 3 cleaning, determined empirically"


@register("realbasicvsr")
class RealBasicVSR(nn.Module):
    """MMagic's RealBasicVSRNet (see the module docstring).

    Attributes:
      scale: must be 4.
      mid_channels: channels of the cleaning module and of BasicVSR's propagation (64 as
        published).
      num_propagation_blocks: residual blocks per propagation branch (20 as published).
      num_cleaning_blocks: residual blocks of the cleaning module (20 as published).
      dynamic_refine_thres: clean again while the mean |residue| ≥ this / 255 (255 as
        published, i.e. one pass in practice; MMagic suggests 5 for testing).
      dtype: compute dtype of the convolutions; residues, flows and the output are float32.

    Parameter names: ``image_cleaning_0/main_0``, ``image_cleaning_0/main_2_{i}/conv{1,2}``,
    ``image_cleaning_1``, and ``basicvsr/…`` as `basicvsr.BasicVSR`'s.
    """

    scale: int = 4
    mid_channels: int = 64
    num_propagation_blocks: int = 20
    num_cleaning_blocks: int = 20
    dynamic_refine_thres: float = 255.0
    dtype: Any = jnp.float32
    flow_modules: ClassVar[tuple[str, ...]] = ("basicvsr/spynet",)  # the flow network (optimizers.make_optimizer)

    def setup(self):
        self.image_cleaning_0 = ConvResidualBlocks(self.mid_channels, self.num_cleaning_blocks, self.dtype)
        self.image_cleaning_1 = layers.Conv(3, 3, dtype=self.dtype)
        self.basicvsr = BasicVSR(4, self.mid_channels, self.num_propagation_blocks, self.dtype)

    def clean(self, frames):
        """One cleaning pass of (M, h, w, 3) float32 frames: (cleaned frames, mean |residue|)."""
        residues = self.image_cleaning_1(self.image_cleaning_0(frames)).astype(jnp.float32)
        return frames + residues, jnp.mean(jnp.abs(residues))

    def cleaned(self, lr):
        """The frames after the cleaning loop, (N, T, h, w, 3) float32 (MMagic's ``return_lqs``)."""
        if lr.ndim != 5 or lr.shape[-1] != 3:
            raise ValueError(f"realbasicvsr expects LR clips (N, T, h, w, 3), got shape {lr.shape}")
        n, t, h, w, _ = lr.shape
        thres = self.dynamic_refine_thres / 255.0
        frames, residue = self.clean(lr.astype(jnp.float32).reshape(n * t, h, w, 3))

        def again(mdl, frames, residue):
            return mdl.clean(frames)

        def stop(mdl, frames, residue):
            return frames, residue

        for _ in range(MAX_CLEANING - 1):  # a pass runs only while the last residue was >= thres
            frames, residue = nn.cond(residue >= thres, again, stop, self, frames, residue)
        return frames.reshape(n, t, h, w, 3)

    def __call__(self, lr, train: bool = False):
        del train  # no dropout / batch norm
        if self.scale != 4:
            raise ValueError(f"realbasicvsr supports only scale 4 (as the authors'), got scale={self.scale!r}")
        return self.basicvsr(self.cleaned(lr))
