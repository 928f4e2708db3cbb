"""Published weight files by name: where their authors publish them, which of our
architectures (and options) load them, and what they are for.

URLs are the authors' own: Real-ESRGAN's from its `inference_realesrgan.py` (xinntao/Real-ESRGAN,
commit 07e2323). Hashes: a file whose name carries the first hex digits of its sha256 (BasicSR's
and torchvision's convention) is checked against them; the Real-ESRGAN release files carry none,
and no connected machine has measured them yet (`sha256=None`: checked only for being a
loadable state_dict of the right shapes).
"""

from __future__ import annotations

import dataclasses
from typing import Any

REAL_ESRGAN = "Real-ESRGAN (Wang et al., ICCVW 2021), github.com/xinntao/Real-ESRGAN, BSD-3-Clause"
_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    arch: str  # a registered model name
    scale: int
    kwargs: dict[str, Any]  # the model's options that the file's shapes need
    task: str  # BI / BD / real-world / anime
    url: str
    source: str  # paper, repository and licence
    score: str = ""  # the published score the file was reported with, and where
    sha256: str | None = None
    twin: str = ""  # a second file mixed in by `denoise` (realesr-general-x4v3)

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


ENTRIES = {
    e.name: e
    for e in [
        Entry(
            "RealESRGAN_x4plus",
            "rrdbnet",
            4,
            {"features": 64, "num_blocks": 23, "grow_features": 32},
            "real-world",
            f"{_RELEASES}/v0.1.0/RealESRGAN_x4plus.pth",
            REAL_ESRGAN,
            "no PSNR table: trained for perceptual quality on real-world degradations",
        ),
        Entry(
            "RealESRNet_x4plus",
            "rrdbnet",
            4,
            {"features": 64, "num_blocks": 23, "grow_features": 32},
            "real-world",
            f"{_RELEASES}/v0.1.1/RealESRNet_x4plus.pth",
            REAL_ESRGAN,
            "no PSNR table: the L1-trained generator before the GAN stage",
        ),
        Entry(
            "RealESRGAN_x2plus",
            "rrdbnet",
            2,
            {"features": 64, "num_blocks": 23, "grow_features": 32},
            "real-world",
            f"{_RELEASES}/v0.2.1/RealESRGAN_x2plus.pth",
            REAL_ESRGAN,
            "no PSNR table: trained for perceptual quality on real-world degradations",
        ),
        Entry(
            "RealESRGAN_x4plus_anime_6B",
            "rrdbnet",
            4,
            {"features": 64, "num_blocks": 6, "grow_features": 32},
            "anime",
            f"{_RELEASES}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth",
            REAL_ESRGAN,
            "no PSNR table: anime images",
        ),
        Entry(
            "realesr-animevideov3",
            "srvgg",
            4,
            {"features": 64, "num_conv": 16, "act": "prelu"},
            "anime",
            f"{_RELEASES}/v0.2.5.0/realesr-animevideov3.pth",
            REAL_ESRGAN,
            "no PSNR table: anime video, frame by frame",
        ),
        Entry(
            "realesr-general-x4v3",
            "srvgg",
            4,
            {"features": 64, "num_conv": 32, "act": "prelu"},
            "real-world",
            f"{_RELEASES}/v0.2.5.0/realesr-general-x4v3.pth",
            REAL_ESRGAN,
            "no PSNR table: general scenes; --denoise mixes in its -wdn- twin",
            twin=f"{_RELEASES}/v0.2.5.0/realesr-general-wdn-x4v3.pth",
        ),
    ]
}


def get(name: str) -> Entry:
    from vsr_jax.errors import UserError

    if name not in ENTRIES:
        raise UserError(f"no published model named {name!r}; `python -m vsr_jax.pretrained list` shows them")
    return ENTRIES[name]
