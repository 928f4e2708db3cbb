"""Published weight files by name: where their authors publish them, which of our
architectures (and options) load them, what they are for, and the score they were published with.

Where each URL comes from (read in the authors' repositories; nothing here was downloaded):

* Real-ESRGAN's release files: its ``inference_realesrgan.py`` and ``docs/model_zoo.md``
  (xinntao/Real-ESRGAN at a4abfb2); the official ESRGAN file converted by BasicSR is on the
  same release page (``docs/Training.md``, ``docs/model_zoo.md``).
* BasicSR's files (EDSR, ESRGAN-PSNR, SpyNet, BasicVSR, MSRResNet): only on Google Drive
  (``scripts/download_pretrained_models.py`` names each file and its Drive id; ``docs/ModelZoo.md``
  the folders; XPixelGroup/BasicSR at 8d56e3a). Drive gives programs no stable direct link
  (large files need a confirmation page), so these entries are ``manual``: `fetch` never
  connects, and says in one line which page to open and the exact path to put the file at.
* MMagic's files: ``configs/*/metafile.yml`` and ``README.md`` (open-mmlab/mmagic at 0a560bb),
  on download.openmmlab.com. Their state_dicts keep the generator under ``generator.`` /
  ``generator_ema.`` (MMagic's layout; the importer tells it from the keys).

Hashes: BasicSR, MMagic and torchvision put the first 8 hex digits of the file's sha256 in
its name (``-3d2a1287.pth``): `download.fetch` checks them. No full sha256 is recorded: none
was measured on a connected machine (``sha256=None``). Real-ESRGAN's release files carry no
prefix: they are read unverified (through the restricted unpickler, which runs no code, then
every key and shape is checked). ``size``: bytes, when a release page states it (none did
offline: left None). Scores are quoted from the page or paper named with them (PSNR in dB).
Most of its 600 lines are the entries themselves (data), one per published file.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from vsr_jax.errors import UserError

REAL_ESRGAN = "Real-ESRGAN (Wang et al., ICCVW 2021), github.com/xinntao/Real-ESRGAN"
BASICSR = "BasicSR model zoo, github.com/XPixelGroup/BasicSR (docs/ModelZoo.md)"
MMAGIC = "MMagic, github.com/open-mmlab/mmagic"
BSD3, APACHE = "BSD-3-Clause", "Apache-2.0"

_RELEASES = "https://github.com/xinntao/Real-ESRGAN/releases/download"
_OPENMMLAB = "https://download.openmmlab.com/mmediting/restorers"
_DRIVE_FILE = "https://drive.google.com/file/d/{}/view"
# BasicSR's "Reproduced Experiments" folder (docs/ModelZoo.md); its MSRResNet runs are not in the
# download script: the file is <experiment>/models/net_g_1000000.pth inside this folder
_DRIVE_REPRODUCED = "https://drive.google.com/drive/folders/1XN4WXKJ53KQ0Cu0Yv-uCt8DZWq6uufaP"

_RRDB = {"features": 64, "num_blocks": 23, "grow_features": 32}
_EDSR_M = {"features": 64, "num_blocks": 16, "res_scale": 1.0}
_EDSR_L = {"features": 256, "num_blocks": 32, "res_scale": 0.1}
_BASICVSR = {"num_feat": 64, "num_block": 30}
_REALBASICVSR = {"mid_channels": 64, "num_propagation_blocks": 20, "num_cleaning_blocks": 20}
_BASICVSRPP = {"mid_channels": 64, "num_blocks": 7}
# BasicSR options/test/EDVR/test_EDVR_{M,L}_x4_SR_REDS.yml (padding: each file's test set's)
_EDVR_M = {"num_feat": 64, "num_frame": 5, "deformable_groups": 8, "num_extract_block": 5, "num_reconstruct_block": 10}
_EDVR_L = _EDVR_M | {"num_feat": 128, "num_reconstruct_block": 40}
# BasicSR options/test/BasicVSR/test_IconVSR_{REDS,Vimeo90K_BIx4}.yml
_ICONVSR = {"num_feat": 64, "num_block": 30, "keyframe_stride": 5}


@dataclasses.dataclass(frozen=True)
class Entry:
    name: str
    arch: str  # a registered model name (or a component's: "spynet")
    scale: int  # 0: not an upscaler (a component)
    kwargs: dict[str, Any]  # the model's options that the file's shapes need
    task: str  # BI / BD / real-world / anime / flow
    url: str  # the file's URL; for a `manual` entry, the page a person downloads it from
    source: str  # paper and repository
    licence: str
    score: str = ""  # the published score the file was reported with, and where
    sha256: str | None = None
    twin: str = ""  # URL of a second file mixed in by the denoise strength (realesr-general-x4v3)
    file: str = ""  # the file's name when the URL does not end with it (Drive pages)
    manual: bool = False  # no URL a program can download: the user puts the file in the cache
    size: int | None = None  # bytes, as the release page states it
    runnable: bool = True  # False: a component (SpyNet) that vsr-upscale cannot run alone
    page_file: str = ""  # a manual file's name on its page, when not `filename`

    @property
    def filename(self) -> str:
        return self.file or self.url.rsplit("/", 1)[-1]

    @property
    def twin_filename(self) -> str:
        return self.twin.rsplit("/", 1)[-1] if self.twin else ""

    @property
    def origin(self) -> str:
        """Where the file comes from, in a few words."""
        if self.manual:
            return "BasicSR, Google Drive (by hand)"
        if "/xinntao/Real-ESRGAN/" in self.url:
            return "Real-ESRGAN release"
        if "download.openmmlab.com" in self.url:
            return "MMagic"
        return self.url.split("/")[2]

    @property
    def verified_by(self) -> str:
        """'sha256', 'name' (the hash prefix in the file name) or '' (unverified)."""
        from vsr_jax.pretrained import download

        if self.sha256:
            return "sha256"
        return "name" if download.hash_prefix_from_name(self.filename) else ""


def _real_esrgan(name, arch, scale, kwargs, task, release, score, **kw) -> Entry:
    return Entry(name, arch, scale, kwargs, task, f"{_RELEASES}/{release}/{name}.pth", REAL_ESRGAN, BSD3, score, **kw)


def _basicsr_drive(name, arch, scale, kwargs, task, file, drive_id, source, score, **kw) -> Entry:
    return Entry(
        name,
        arch,
        scale,
        kwargs,
        task,
        _DRIVE_FILE.format(drive_id),
        source,
        APACHE,
        score,
        file=file,
        manual=True,
        **kw,
    )


def _basicsr_reproduced(scale: int, experiment: str, score: str) -> Entry:
    return Entry(
        f"MSRResNet_x{scale}",
        "msrresnet",
        scale,
        {"features": 64, "num_blocks": 16},
        "BI",
        _DRIVE_REPRODUCED,
        f"MSRResNet (SRResNet without BN, Wang et al. ESRGAN 2018) trained by BasicSR ({experiment}/models/"
        f"net_g_1000000.pth in the Drive folder); {BASICSR}",
        APACHE,
        score,
        file=f"MSRResNet_x{scale}.pth",
        manual=True,
        page_file=f"{experiment}/models/net_g_1000000.pth",
    )


def _mmagic(name, arch, scale, kwargs, task, path, source, score, **kw) -> Entry:
    return Entry(name, arch, scale, kwargs, task, f"{_OPENMMLAB}/{path}", source, APACHE, score, **kw)


_EDSR_SRC = "EDSR (Lim et al., CVPRW 2017), the official model converted by BasicSR; " + BASICSR
_BASICVSR_SRC = "BasicVSR (Chan et al., CVPR 2021), trained by its authors in BasicSR; " + BASICSR
_ICONVSR_SRC = "IconVSR (Chan et al., CVPR 2021, the BasicVSR paper), trained by its authors in BasicSR; " + BASICSR
_EDVR_SRC = "EDVR (Wang et al., CVPRW 2019), the authors' NTIRE 2019 models converted by BasicSR; " + BASICSR
_EDVR_ZOO = "BasicSR docs/ModelZoo.md"
_ZOO = "Set5 / Set14 / DIV2K100 dB, RGB, border cropped: BasicSR ModelZoo"
_MM_BASICVSR = "re-measured: MMagic configs/basicvsr/README.md"
_MM_BASICVSRPP = "MMagic configs/basicvsr_pp/metafile.yml"
_BASICVSRPP_SRC = "BasicVSR++ (Chan et al., CVPR 2022), the authors' model in " + MMAGIC
# BasicVSR paper (CVPR 2021), quantitative comparison: BI REDS4 31.42 (RGB), Vimeo-90K-T 37.18,
# Vid4 27.24; BD UDM10 39.96, Vimeo-90K-T 37.53, Vid4 27.96 (Y)

ENTRIES = {
    e.name: e
    for e in [
        # --- Real-ESRGAN (downloadable; no hash in the names)
        _real_esrgan(
            "RealESRGAN_x4plus",
            "rrdbnet",
            4,
            _RRDB,
            "real-world",
            "v0.1.0",
            "none (perceptual, real-world degradations; no PSNR table)",
        ),
        _real_esrgan(
            "RealESRNet_x4plus", "rrdbnet", 4, _RRDB, "real-world", "v0.1.1", "none (the L1 stage before the GAN)"
        ),
        _real_esrgan(
            "RealESRGAN_x2plus",
            "rrdbnet",
            2,
            _RRDB,
            "real-world",
            "v0.2.1",
            "none (perceptual, real-world degradations; no PSNR table)",
        ),
        _real_esrgan(
            "RealESRGAN_x4plus_anime_6B",
            "rrdbnet",
            4,
            {"features": 64, "num_blocks": 6, "grow_features": 32},
            "anime",
            "v0.2.2.4",
            "none (anime images)",
        ),
        _real_esrgan(
            "realesr-animevideov3",
            "srvgg",
            4,
            {"features": 64, "num_conv": 16, "act": "prelu"},
            "anime",
            "v0.2.5.0",
            "none (anime video, frame by frame)",
        ),
        _real_esrgan(
            "realesr-general-x4v3",
            "srvgg",
            4,
            {"features": 64, "num_conv": 32, "act": "prelu"},
            "real-world",
            "v0.2.5.0",
            "none (general scenes; --denoise mixes in its -wdn- twin, default 0.5)",
            twin=f"{_RELEASES}/v0.2.5.0/realesr-general-wdn-x4v3.pth",
        ),
        Entry(
            "ESRGAN_SRx4_DF2KOST_official",
            "rrdbnet",
            4,
            _RRDB,
            "BI",
            f"{_RELEASES}/v0.1.1/ESRGAN_SRx4_DF2KOST_official-ff704c30.pth",
            "ESRGAN (Wang et al., ECCVW 2018), the official model converted by BasicSR, on Real-ESRGAN's "
            "release page (docs/Training.md)",
            APACHE,
            "none (perceptual; the paper reports perceptual index, not PSNR)",
        ),
        # --- BasicSR (Google Drive only: manual)
        _basicsr_drive(
            "ESRGAN_PSNR_SRx4_DF2K_official",
            "rrdbnet",
            4,
            _RRDB,
            "BI",
            "ESRGAN_PSNR_SRx4_DF2K_official-150ff491.pth",
            "1swaV5iBMFfg-DL6ZyiARztbhutDCWXMM",
            "ESRGAN's PSNR-oriented RRDBNet (Wang et al., ECCVW 2018), official, converted by BasicSR; " + BASICSR,
            "not in BasicSR's tables (see esrgan_psnr_x4 for MMagic's re-trained one)",
        ),
        _basicsr_drive(
            "EDSR_Mx2",
            "edsr",
            2,
            _EDSR_M,
            "BI",
            "EDSR_Mx2_f64b16_DIV2K_official-3ba7b086.pth",
            "1mREMGVDymId3NzIc2u90sl_X4-pb4ZcV",
            _EDSR_SRC,
            f"35.78 / 31.50 / 34.63 ({_ZOO})",
        ),
        _basicsr_drive(
            "EDSR_Mx3",
            "edsr",
            3,
            _EDSR_M,
            "BI",
            "EDSR_Mx3_f64b16_DIV2K_official-6908f88a.pth",
            "1EriqQqlIiRyPbrYGBbwr_FZzvb3iwqz5",
            _EDSR_SRC,
            f"32.36 / 28.39 / 30.94 ({_ZOO})",
        ),
        _basicsr_drive(
            "EDSR_Mx4",
            "edsr",
            4,
            _EDSR_M,
            "BI",
            "EDSR_Mx4_f64b16_DIV2K_official-0c287733.pth",
            "1bCK6cFYU01uJudLgUUe-jgx-tZ3ikOWn",
            _EDSR_SRC,
            f"30.18 / 26.75 / 28.97 ({_ZOO})",
        ),
        _basicsr_drive(
            "EDSR_Lx2",
            "edsr",
            2,
            _EDSR_L,
            "BI",
            "EDSR_Lx2_f256b32_DIV2K_official-be38e77d.pth",
            "15257lZCRZ0V6F9LzTyZFYbbPrqNjKyMU",
            _EDSR_SRC,
            f"36.00 / 31.86 / 35.05 ({_ZOO})",
        ),
        _basicsr_drive(
            "EDSR_Lx3",
            "edsr",
            3,
            _EDSR_L,
            "BI",
            "EDSR_Lx3_f256b32_DIV2K_official-3660f70d.pth",
            "18q_D434sLG_rAZeHGonAX8dkqjoyZ2su",
            _EDSR_SRC,
            f"32.64 / 28.64 / 31.28 ({_ZOO})",
        ),
        _basicsr_drive(
            "EDSR_Lx4",
            "edsr",
            4,
            _EDSR_L,
            "BI",
            "EDSR_Lx4_f256b32_DIV2K_official-76ee1c8f.pth",
            "1GCi30YYCzgMCcgheGWGusP9aWKOAy5vl",
            _EDSR_SRC,
            f"30.55 / 27.00 / 29.28 ({_ZOO})",
        ),
        _basicsr_reproduced(
            2, "002_MSRResNet_x2_f64b16_DIV2K_1000k_B16G1_001pretrain_wandb", f"35.75 / 31.54 / 34.67 ({_ZOO})"
        ),
        _basicsr_reproduced(
            3, "003_MSRResNet_x3_f64b16_DIV2K_1000k_B16G1_001pretrain_wandb", f"32.40 / 28.44 / 30.97 ({_ZOO})"
        ),
        _basicsr_reproduced(4, "001_MSRResNet_x4_f64b16_DIV2K_1000k_B16G1_wandb", f"30.25 / 26.78 / 29.00 ({_ZOO})"),
        _basicsr_drive(
            "spynet_sintel_final",
            "spynet",
            0,
            {},
            "flow (for basicvsr training)",
            "spynet_sintel_final-3d2a1287.pth",
            "1VZz1cikwTRVX7zXoD247DB7n5Tj_LQpF",
            "SpyNet (Ranjan & Black, CVPR 2017), Sintel-final model converted by BasicSR; " + BASICSR,
            "none (optical flow; BasicVSR's initialisation)",
            runnable=False,
        ),
        _basicsr_drive(
            "BasicVSR_REDS4",
            "basicvsr",
            4,
            _BASICVSR,
            "BI",
            "BasicVSR_REDS4-543c8261.pth",
            "1wLWdz18lWf9Z7lomHPkdySZ-_GV2920p",
            _BASICVSR_SRC,
            "REDS4 31.42 dB RGB (BasicVSR paper, CVPR 2021)",
        ),
        _basicsr_drive(
            "BasicVSR_Vimeo90K_BIx4",
            "basicvsr",
            4,
            _BASICVSR,
            "BI",
            "BasicVSR_Vimeo90K_BIx4-2a29695a.pth",
            "1ykIu1jv5wo95Kca2TjlieJFxeV4VVfHP",
            _BASICVSR_SRC,
            "Vid4 27.24 / Vimeo-90K-T 37.18 dB Y (BasicVSR paper, CVPR 2021)",
        ),
        _basicsr_drive(
            "BasicVSR_Vimeo90K_BDx4",
            "basicvsr",
            4,
            _BASICVSR,
            "BD",
            "BasicVSR_Vimeo90K_BDx4-e9bf46eb.pth",
            "1baaf4RSpzs_zcDAF_s2CyArrGvLgmXxW",
            _BASICVSR_SRC,
            "Vid4 27.96 / UDM10 39.96 / Vimeo-90K-T 37.53 dB Y, BD (BasicVSR paper, CVPR 2021)",
        ),
        _basicsr_drive(
            "IconVSR_REDS",
            "iconvsr",
            4,
            _ICONVSR | {"temporal_padding": 2},
            "BI",
            "IconVSR_REDS-aaa5367f.pth",
            "1b8ir754uIAFUSJ8YW_cmPzqer19AR7Hz",
            _ICONVSR_SRC,
            "REDS4 31.67 dB RGB (BasicVSR paper, CVPR 2021)",
        ),
        _basicsr_drive(
            "IconVSR_Vimeo90K_BIx4",
            "iconvsr",
            4,
            _ICONVSR | {"temporal_padding": 3},
            "BI",
            "IconVSR_Vimeo90K_BIx4-35fec07c.pth",
            "1lWUB36ERjFbAspr-8UsopJ6xwOuWjh2g",
            _ICONVSR_SRC,
            "Vid4 27.39 / Vimeo-90K-T 37.47 dB Y (BasicVSR paper, CVPR 2021)",
        ),
        _basicsr_drive(
            "IconVSR_Vimeo90K_BDx4",
            "iconvsr",
            4,
            _ICONVSR | {"temporal_padding": 3},
            "BD",
            "IconVSR_Vimeo90K_BDx4-cfcb7e00.pth",
            "13lp55s-YTd-fApx8tTy24bbHsNIGXdAH",
            _ICONVSR_SRC,
            "Vid4 28.04 / UDM10 40.03 / Vimeo-90K-T 37.84 dB Y, BD (BasicVSR paper, CVPR 2021)",
        ),
        _basicsr_drive(
            "EDVR_M_x4_SR_REDS_official",
            "edvr",
            4,
            _EDVR_M | {"padding": "reflection_circle"},
            "BI",
            "EDVR_M_x4_SR_REDS_official-32075921.pth",
            "1dd6aFj-5w2v08VJTq5mS9OFsD-wALYD6",
            _EDVR_SRC,
            f"REDS4 30.53 dB RGB ({_EDVR_ZOO})",
        ),
        _basicsr_drive(
            "EDVR_M_woTSA_x4_SR_REDS_official",
            "edvr",
            4,
            _EDVR_M | {"with_tsa": False, "padding": "reflection_circle"},
            "BI",
            "EDVR_M_woTSA_x4_SR_REDS_official-1edf645c.pth",
            "1C_WdN-NyNj-P7SOB5xIVuHl4EBOwd-Ny",
            _EDVR_SRC,
            "none (the first stage of EDVR_M's training)",
        ),
        _basicsr_drive(
            "EDVR_L_x4_SR_REDS_official",
            "edvr",
            4,
            _EDVR_L | {"padding": "reflection_circle"},
            "BI",
            "EDVR_L_x4_SR_REDS_official-9f5f5039.pth",
            "127KXEjlCwfoPC1aXyDkluNwr9elwyHNb",
            _EDVR_SRC,
            f"REDS4 31.09 dB RGB ({_EDVR_ZOO})",
        ),
        _basicsr_drive(
            "EDVR_L_x4_SR_Vimeo90K_official",
            "edvr",
            4,
            _EDVR_L | {"num_frame": 7, "padding": "reflection_circle"},
            "BI",
            "EDVR_L_x4_SR_Vimeo90K_official-162b54e4.pth",
            "1aVR3lkX6ItCphNLcT7F5bbbC484h4Qqy",
            _EDVR_SRC,
            f"Vid4 27.35 dB Y, 25.83 dB RGB ({_EDVR_ZOO})",
        ),
        _basicsr_drive(
            "EDVR_L_x4_SRblur_REDS_official",
            "edvr",
            4,
            _EDVR_L | {"with_predeblur": True, "padding": "replicate"},
            "REDS SRblur (motion-blurred bicubic LR)",
            "EDVR_L_x4_SRblur_REDS_official-983d7b8e.pth",
            "1GZz_87ybR8eAAY3X2HWwI3L6ny7-5Yvl",
            _EDVR_SRC,
            f"REDS4 28.88 dB RGB, blurred LR ({_EDVR_ZOO})",
        ),
        # --- MMagic (downloadable, hash prefix in the names)
        _mmagic(
            "spynet_mmagic",
            "spynet",
            0,
            {},
            "flow (for basicvsr / basicvsrpp training)",
            "basicvsr/spynet_20210409-c6c1bd09.pth",
            "SpyNet (Ranjan & Black, CVPR 2017), the initialisation of MMagic's BasicVSR / BasicVSR++ recipes; "
            + MMAGIC,
            "none (optical flow)",
            runnable=False,
        ),
        _mmagic(
            "basicvsr_reds4",
            "basicvsr",
            4,
            _BASICVSR,
            "BI",
            "basicvsr/basicvsr_reds4_20120409-0e599677.pth",
            "BasicVSR (Chan et al., CVPR 2021) trained by MMagic; " + MMAGIC,
            f"REDS4 31.42 dB RGB, Vid4 27.27 dB Y ({_MM_BASICVSR})",
        ),
        _mmagic(
            "basicvsr_vimeo90k_bi",
            "basicvsr",
            4,
            _BASICVSR,
            "BI",
            "basicvsr/basicvsr_vimeo90k_bi_20210409-d2d8f760.pth",
            "BasicVSR (Chan et al., CVPR 2021) trained by MMagic; " + MMAGIC,
            f"Vid4 27.28 / Vimeo-90K-T 37.20 dB Y ({_MM_BASICVSR})",
        ),
        _mmagic(
            "basicvsr_vimeo90k_bd",
            "basicvsr",
            4,
            _BASICVSR,
            "BD",
            "basicvsr/basicvsr_vimeo90k_bd_20210409-0154dd64.pth",
            "BasicVSR (Chan et al., CVPR 2021) trained by MMagic; " + MMAGIC,
            f"Vid4 27.98 / UDM10 40.00 / Vimeo-90K-T 37.55 dB Y, BD ({_MM_BASICVSR})",
        ),
        _mmagic(
            "basicvsrpp_reds4",
            "basicvsrpp",
            4,
            _BASICVSRPP,
            "BI",
            "basicvsr_plusplus/basicvsr_plusplus_c64n7_8x1_600k_reds4_20210217-db622b2f.pth",
            _BASICVSRPP_SRC,
            f"REDS4 32.39 dB RGB, Vid4 27.77 dB Y ({_MM_BASICVSRPP})",
        ),
        _mmagic(
            "basicvsrpp_vimeo90k_bi",
            "basicvsrpp",
            4,
            _BASICVSRPP,
            "BI",
            "basicvsr_plusplus/basicvsr_plusplus_c64n7_8x1_300k_vimeo90k_bi_20210305-4ef437e2.pth",
            _BASICVSRPP_SRC,
            f"Vid4 27.79 / Vimeo-90K-T 37.79 dB Y ({_MM_BASICVSRPP})",
        ),
        _mmagic(
            "basicvsrpp_vimeo90k_bd",
            "basicvsrpp",
            4,
            _BASICVSRPP,
            "BD",
            "basicvsr_plusplus/basicvsr_plusplus_c64n7_8x1_300k_vimeo90k_bd_20210305-ab315ab1.pth",
            _BASICVSRPP_SRC,
            f"Vid4 29.04 / UDM10 40.72 / Vimeo-90K-T 38.21 dB Y, BD ({_MM_BASICVSRPP})",
        ),
        _mmagic(
            "basicvsrpp_c128n25_ntire_vsr",
            "basicvsrpp",
            4,
            {"mid_channels": 128, "num_blocks": 25},
            "BI",
            "basicvsr_plusplus/basicvsr_plusplus_c128n25_ntire_vsr_20210311-1ff35292.pth",
            "BasicVSR++'s NTIRE 2021 video SR entry (128 channels, 25 blocks) in " + MMAGIC,
            f"none (NTIRE 2021 test set; {_MM_BASICVSRPP} lists no score)",
        ),
        _mmagic(
            "realbasicvsr_x4",
            "realbasicvsr",
            4,
            _REALBASICVSR | {"dynamic_refine_thres": 5.0},  # MMagic's config: "change to 5 for test"
            "real-world",
            "real_basicvsr/realbasicvsr_c64b20_1x30x8_lr5e-5_150k_reds_20211104-52f77c2c.pth",
            "RealBasicVSR (Chan et al., CVPR 2022), the authors' model in " + MMAGIC,
            "no PSNR (real-world): NIQE 3.77, NRQM 6.05, PI 3.86, BRISQUE 29.03, Y "
            "(MMagic configs/real_basicvsr/README.md)",
        ),
        _mmagic(
            "realbasicvsr_wogan_x4",
            "realbasicvsr",
            4,
            _REALBASICVSR | {"dynamic_refine_thres": 1.5},  # MMagic's config: "change to 1.5 for test"
            "real-world",
            "real_basicvsr/realbasicvsr_wogan_c64b20_2x30x8_lr1e-4_300k_reds_20211027-0e2ff207.pth",
            "RealBasicVSR (Chan et al., CVPR 2022) before the GAN stage (L1 only), the authors' model in " + MMAGIC,
            "none (MMagic gives no score for it)",
        ),
        _mmagic(
            "esrgan_psnr_x4",
            "rrdbnet",
            4,
            _RRDB,
            "BI",
            "esrgan/esrgan_psnr_x4c64b23g32_1x16_1000k_div2k_20200420-bf5c993c.pth",
            "ESRGAN's PSNR-oriented RRDBNet (Wang et al., ECCVW 2018) trained by MMagic; " + MMAGIC,
            "Set5 30.64 / Set14 27.05 / DIV2K 29.34 dB RGB (MMagic configs/esrgan/README.md)",
        ),
    ]
}


def get(name: str) -> Entry:
    if name not in ENTRIES:
        raise UserError(f"no published model named {name!r}; `python -m vsr_jax.pretrained list` shows them")
    return ENTRIES[name]


def cache_path(entry: Entry, twin: bool = False, cache_dir: str | os.PathLike | None = None) -> str:
    """Where the entry's file (or its twin) lives in the weights cache (whether there or not)."""
    from vsr_jax.pretrained import download

    return os.path.join(download.weights_dir(cache_dir), entry.twin_filename if twin else entry.filename)


def is_cached(entry: Entry, cache_dir: str | os.PathLike | None = None) -> bool:
    """Whether a regular file (not a link) is at the entry's cache path; its hash is checked on use."""
    path = cache_path(entry, cache_dir=cache_dir)
    return os.path.isfile(path) and not os.path.islink(path)


def fetch(
    entry: Entry | str, *, twin: bool = False, progress: bool = True, cache_dir: str | os.PathLike | None = None
) -> str:
    """The local path of the entry's file (`twin`: its denoise twin's), downloaded into the
    weights cache unless there already (`download.fetch`), checked against the sha256 or the hash
    prefix in its name when it has one. A `manual` entry never connects: its file must have been
    put in the cache by hand, else one line names the page and the exact path."""
    from vsr_jax.pretrained import download

    if isinstance(entry, str):
        entry = get(entry)
    if twin and not entry.twin:
        raise UserError(f"{entry.name} has no denoise twin")
    url = entry.twin if twin else entry.url
    filename = entry.twin_filename if twin else entry.filename
    sha256 = None if twin else entry.sha256
    return download.fetch(
        url,
        sha256=sha256,
        filename=filename,
        cache_dir=cache_dir,
        progress=progress,
        allow_unverified=sha256 is None,
        manual=entry.manual,
        label=entry.name,
        page_file=entry.page_file,
    )
