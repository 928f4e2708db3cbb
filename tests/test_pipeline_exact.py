"""The input pipeline's batches, bit for bit, as they were before its hot path was reworked (issue 22).

The digests below are SHA-256 of the first two batches (LR and HR, shape and bytes) of fixed
configs, computed with the pipeline of commit 7492105 (`python -m tests.test_pipeline_exact`
prints them for the code checked out), for the bundled sample clips and a generated video
folder (lossless PNG frames and an FFV1 video); those of a generated Vimeo-90K tree and REDS
tree with the pipeline of 0e7e027 (per-example host calls, the band degradation, whole
septuplets decoded), whose sample and folder digests are the same as 7492105's. Any change
to how examples are built that moves one bit of one batch fails here — resumed and sharded
runs rely on batches being a pure function of (seed, example index). Every digest is checked
with AUTOTUNE and 1 parallel call: the number of threads never changes a batch.
"""

import hashlib

import numpy as np
import pytest

from tests.conftest import tiny_unet_config
from vsr_jax.data import pipeline

SAMPLE = {
    "bi_x4_T7_reverse": (
        {"data.num_frames": 7, "data.scale": 4, "batch_size": 4, "data.temporal_reverse": True},
        "6209fb6278e35d080f39aef2",
    ),
    "bd_x3_T3_noise": (
        {"data.num_frames": 3, "data.scale": 3, "batch_size": 4, "data.degradation": "bd", "data.noise_sigma": 5.0},
        "085d7650c6c641c39f077515",
    ),
    "bd_duf_x2_T1_jpeg_plain": (
        {"data.num_frames": 1, "data.scale": 2, "batch_size": 8, "data.degradation": "bd_duf"}
        | {"data.jpeg_quality": 50, "data.augment": False},
        "4e83288b3b62cb8597d894d6",
    ),
}
FOLDER = {
    "bi_x2_T5": (
        {"data.num_frames": 5, "data.scale": 2, "batch_size": 4, "data.temporal_reverse": True},
        "1f7e2c891ba40b5c647db6eb",
    ),
    "bd_x4_T3": (
        {"data.num_frames": 3, "data.scale": 4, "batch_size": 4, "data.degradation": "bd"},
        "3b53f78c96c3919fc4b0d943",
    ),
}
VIMEO = {
    "bi_x2_T3_reverse": (
        {"data.num_frames": 3, "data.scale": 2, "batch_size": 4, "data.temporal_reverse": True},
        "5a86ac95056fa87f30d564be",
    ),
}
REDS = {
    "bd_x4_T3": (
        {"data.num_frames": 3, "data.scale": 4, "batch_size": 4, "data.degradation": "bd"},
        "dd42681da687d58a88dfb0a8",
    ),
}
H, W = 72, 96


def digest(config, n: int = 2) -> str:
    it = pipeline.make_train_dataset(config).as_numpy_iterator()
    h = hashlib.sha256()
    for _ in range(n):
        b = next(it)
        for key in ("lr", "hr"):
            h.update(f"{key}{b[key].shape}{b[key].dtype}".encode())
            h.update(np.ascontiguousarray(b[key]).tobytes())
    return h.hexdigest()[:24]


def frames(seed: int, n: int) -> np.ndarray:
    """n (H, W, 3) uint8 frames of a smooth random texture moving 1 px per frame."""
    rng = np.random.default_rng(seed)
    big = np.kron(rng.integers(0, 256, (H // 8 + 2, (W + n) // 8 + 2, 3)), np.ones((8, 8, 1)))
    return np.stack([big[1 : H + 1, t : t + W] for t in range(n)]).astype(np.uint8)


def make_folder(root) -> None:
    """A PNG frame folder (12 frames) and an FFV1 (lossless RGB) video (20 frames) under `root`."""
    import av
    from PIL import Image

    (root / "shots").mkdir(parents=True)
    for t, f in enumerate(frames(0, 12)):
        Image.fromarray(f).save(root / "shots" / f"{t:03d}.png")
    with av.open(str(root / "pan.mkv"), "w") as out:
        stream = out.add_stream("ffv1", rate=25)
        stream.width, stream.height, stream.pix_fmt = W, H, "bgr0"
        for f in frames(1, 20):
            for packet in stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def make_vimeo_tree(root) -> None:
    """Vimeo-90K's layout: 4 train and 1 test septuplets of PNG frames."""
    from PIL import Image

    ids = [f"00001/{k:04d}" for k in range(1, 6)]
    for k, sequence in enumerate(ids):
        (root / "sequences" / sequence).mkdir(parents=True)
        for t, f in enumerate(frames(10 + k, 7)):
            Image.fromarray(f).save(root / "sequences" / sequence / f"im{t + 1}.png")
    (root / "sep_trainlist.txt").write_text("\n".join(ids[:4]) + "\n")
    (root / "sep_testlist.txt").write_text(ids[4] + "\n")


def make_reds_tree(root) -> None:
    """REDS' layout (train_sharp/<clip>/<frame>.png): three 6-frame training clips."""
    from PIL import Image

    for k, clip in enumerate(("001", "002", "030")):
        (root / "train_sharp" / clip).mkdir(parents=True)
        for t, f in enumerate(frames(20 + k, 6)):
            Image.fromarray(f).save(root / "train_sharp" / clip / f"{t:08d}.png")


def sample_config(overrides: dict, calls: int = 0):
    return tiny_unet_config(**overrides, **{"data.parallel_calls": calls})


def folder_config(root, cache, overrides: dict, calls: int = 0):
    base = {"data.name": "video_folder", "data.path": str(root), "data.cache_dir": str(cache)}
    return tiny_unet_config(
        **base, **{"data.patch_size": 16, "data.val_percent": 0, "data.parallel_calls": calls}, **overrides
    )


def vimeo_config(root, overrides: dict, calls: int = 0):
    base = {"data.name": "vimeo90k", "data.manual_dir": str(root / "manual"), "data.tfds_data_dir": str(root / "tfds")}
    return tiny_unet_config(**base, **{"data.patch_size": 16, "data.parallel_calls": calls}, **overrides)


def reds_config(root, overrides: dict, calls: int = 0):
    base = {"data.name": "reds", "data.path": str(root)}
    return tiny_unet_config(**base, **{"data.patch_size": 16, "data.parallel_calls": calls}, **overrides)


@pytest.fixture(scope="module")
def vimeo(tmp_path_factory):
    root = tmp_path_factory.mktemp("vimeo")
    make_vimeo_tree(root / "manual" / "vimeo_septuplet")
    return root


@pytest.fixture(scope="module")
def reds_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("reds")
    make_reds_tree(root)
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("exact")
    make_folder(root / "videos")
    return root / "videos", root / "cache"


@pytest.mark.parametrize("name", sorted(SAMPLE))
def test_sample_batches_are_unchanged(name):
    overrides, expected = SAMPLE[name]
    assert [digest(sample_config(overrides, calls)) for calls in (0, 1)] == [expected] * 2


@pytest.mark.parametrize("name", sorted(FOLDER))
def test_video_folder_batches_are_unchanged(name, folder):
    overrides, expected = FOLDER[name]
    assert [digest(folder_config(*folder, overrides, calls)) for calls in (0, 1)] == [expected] * 2


@pytest.mark.parametrize("name", sorted(VIMEO))
def test_vimeo90k_batches_are_unchanged(name, vimeo):
    overrides, expected = VIMEO[name]
    assert [digest(vimeo_config(vimeo, overrides, calls)) for calls in (0, 1)] == [expected] * 2


@pytest.mark.parametrize("name", sorted(REDS))
def test_reds_batches_are_unchanged(name, reds_root):
    overrides, expected = REDS[name]
    assert [digest(reds_config(reds_root, overrides, calls)) for calls in (0, 1)] == [expected] * 2


def test_parallel_calls_is_validated():
    from vsr_jax import config_lib
    from vsr_jax.errors import ConfigError

    config_lib.validate(tiny_unet_config(**{"data.parallel_calls": 3}))
    with pytest.raises(ConfigError, match="data.parallel_calls must be >= 0"):
        config_lib.validate(tiny_unet_config(**{"data.parallel_calls": -1}))


if __name__ == "__main__":  # prints the digests of the code checked out (run from the repository root)
    import pathlib
    import tempfile

    for name, (overrides, _) in SAMPLE.items():
        print(f"sample {name}: {digest(sample_config(overrides))!r}")
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        make_folder(root / "videos")
        for name, (overrides, _) in FOLDER.items():
            print(f"folder {name}: {digest(folder_config(root / 'videos', root / 'cache', overrides))!r}")
        make_vimeo_tree(root / "manual" / "vimeo_septuplet")
        for name, (overrides, _) in VIMEO.items():
            print(f"vimeo90k {name}: {digest(vimeo_config(root, overrides))!r}")
        make_reds_tree(root / "reds")
        for name, (overrides, _) in REDS.items():
            print(f"reds {name}: {digest(reds_config(root / 'reds', overrides))!r}")
