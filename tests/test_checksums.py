"""Checkpoints and run folders from elsewhere: the per-array sha256 digests catch every
bit flip, swap and sign change; vsr-eval / vsr-upscale's loader checks a checkpoint's
sizes against the model its config names before reading any array, and never uses the
paths inside that config; Orbax's read-only notices stay off the terminal."""

from __future__ import annotations

import itertools
import json
import logging as pylogging
import os
import shutil

import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags, logging
from absl.testing import flagsaver

from tests import upscale_helpers as uh
from vsr_jax import checkpointing, cli
from vsr_jax.evaluate.runs import load_run

# ------------------------------------------------------------------------- digests


def _flip(a: np.ndarray, bit: int) -> np.ndarray:
    """A copy of float32 `a` with bit `bit` of its bytes flipped (bit 31 of element i: 32*i + 31)."""
    bits = a.copy().view(np.uint32).reshape(-1)
    bits[bit // 32] ^= np.uint32(1 << (bit % 32))
    return bits.view(np.float32).reshape(a.shape)


def _digests(arrays) -> set[str]:
    return {checkpointing.array_digest(x) for x in arrays}


X = np.random.default_rng(0).standard_normal(8).astype(np.float32)


def test_every_single_bit_flip_changes_the_digest():
    flipped = [_flip(X, b) for b in range(32 * X.size)]
    assert len(_digests([X, *flipped])) == 1 + 32 * X.size  # all 256 differ from X and from each other
    assert checkpointing.verify_checksums({"w": flipped[77]}, checkpointing.state_checksums({"w": X})) == ["w"]


def test_every_swap_of_two_distinct_values_changes_the_digest():
    swapped = []
    for i, j in itertools.combinations(range(X.size), 2):
        y = X.copy()
        y[[i, j]] = y[[j, i]]
        swapped.append(y)
    assert len(_digests([X, *swapped])) == 1 + len(swapped) == 29


def test_pairs_of_flips_and_sign_changes_change_the_digest():
    small = X[:4]  # every pair of the 128 bits: 8128 arrays
    pairs = [_flip(_flip(small, a), b) for a, b in itertools.combinations(range(32 * small.size), 2)]
    assert len(_digests([small, *pairs])) == 1 + len(pairs)
    sign_pairs = [_flip(_flip(X, 32 * i + 31), 32 * j + 31) for i, j in itertools.combinations(range(X.size), 2)]
    negated = [np.where(np.arange(X.size) == i, -X, X) for i in range(X.size)] + [-X]
    assert len(_digests([X, *sign_pairs, *negated])) == 1 + len(sign_pairs) + len(negated)
    # the uint32 weighted sum used before missed both: bit 31 twice adds 2·2³¹·odd ≡ 0 (mod 2³²)
    legacy = lambda a: int(checkpointing._legacy_checksum(jnp.asarray(a)))  # noqa: E731, SLF001
    assert legacy(sign_pairs[0]) == legacy(X) and legacy(-X) == legacy(X)


def test_digests_are_tagged_and_cover_every_dtype_of_a_state():
    state = {
        "w": np.ones((2, 3), np.float32),
        "b": jnp.zeros(3, jnp.bfloat16),
        "n": np.int32(7),
        "ok": np.array([True, False]),
    }
    sums = checkpointing.state_checksums(state)
    assert all(v.startswith("sha256:") and len(v) == 7 + 64 for v in sums.values())
    assert checkpointing.verify_checksums(state, sums) == []
    assert checkpointing.verify_checksums({**state, "n": np.int32(8)}, sums) == ["n"]


def test_checkpoints_with_the_old_uint32_digests_are_still_checked(caplog):
    # values written by the uint32 digest of vsr_jax before sha256 (git 62b2791) for these arrays
    w, n = np.linspace(-1, 1, 12, dtype=np.float32).reshape(3, 4), np.arange(5, dtype=np.int32)
    old = {"n": 2323661508, "w": 3583389684}
    assert checkpointing.verify_checksums({"w": w, "n": n}, old) == []
    assert checkpointing.verify_checksums({"w": _flip(w, 3), "n": n}, old) == ["w"]
    # a kind of digest this version does not know is not checked (not "damaged"), with a warning
    assert checkpointing.verify_checksums({"w": w}, {"w": "blake3:00"}) == []
    assert any("cannot check" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------- a run from elsewhere


@pytest.fixture(scope="module")
def srcnn_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("elsewhere") / "srcnn"
    uh.write_checkpoint(workdir, "srcnn")
    return workdir


def _copy(run, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(run, workdir)
    return workdir


def _edit_config(workdir, edit):
    (path,) = workdir.glob("checkpoints/*/config/metadata")
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))


@pytest.fixture
def no_array_reads(monkeypatch):
    """Fails the test if any array of a checkpoint is read."""

    def read(*args, **kwargs):
        raise AssertionError("an array was read")

    monkeypatch.setattr(checkpointing, "_restore_arrays", read)


def test_a_config_whose_model_differs_from_the_arrays_is_refused_before_reading_them(
    srcnn_run, tmp_path, no_array_reads
):
    workdir = _copy(srcnn_run, tmp_path)
    _edit_config(workdir, lambda c: c["model"].update(features=[48, 32]))  # SRCNN's first conv: 64 -> 48
    with pytest.raises(checkpointing.CheckpointError) as e:
        load_run(str(workdir), None)
    message = str(e.value)
    assert "\n" not in message and "does not hold the 'srcnn' model" in message
    assert "params/Conv_0/bias: saved float32[64], the model's float32[48]" in message
    _edit_config(workdir, lambda c: c["model"].update(features="not a width"))
    with pytest.raises(checkpointing.CheckpointError, match=r"^the checkpoint of step \d+ in .*: its config.s model"):
        load_run(str(workdir), None)


def test_an_absurd_size_in_the_metadata_is_refused_before_reading(srcnn_run, monkeypatch, no_array_reads):
    real = checkpointing._saved_leaves  # noqa: SLF001

    def huge(manager, step):  # an array file claiming 4 TiB
        return {**real(manager, step), "params/Conv_0/kernel": ((2**20, 2**20), "float32")}

    monkeypatch.setattr(checkpointing, "_saved_leaves", huge)
    with pytest.raises(checkpointing.CheckpointError, match=r"saved float32\[1048576, 1048576\], the model's float32"):
        load_run(str(srcnn_run), None)


def test_params_larger_than_the_memory_here_are_refused_before_reading(srcnn_run, monkeypatch, no_array_reads):
    monkeypatch.setattr(checkpointing, "_memory_bytes", lambda: 10_000)  # SRCNN's params: 32 kB
    with pytest.raises(checkpointing.CheckpointError, match=r"its params take .* GiB, more than"):
        load_run(str(srcnn_run), None)


def test_the_ema_is_read_when_the_run_kept_one_and_nothing_else_is(srcnn_run, tmp_path, monkeypatch):
    import jax

    config, _, params, _ = load_run(str(srcnn_run), None)
    ema = jax.tree.map(lambda x: x * 0.5, params)
    ckpt = checkpointing.Checkpointer(str(tmp_path), save_every=1, async_save=False)
    state = {"params": params, "ema": ema, "opt_state": {"mu": jnp.zeros((1000,))}, "step": jnp.asarray(3)}
    ckpt.save(3, state, config.to_dict(), {}, force=True)
    ckpt.close()
    real, targets = checkpointing._restore_arrays, []  # noqa: SLF001
    monkeypatch.setattr(checkpointing, "_restore_arrays", lambda m, s, t: targets.append(t) or real(m, s, t))
    _, _, got, step = load_run(str(tmp_path), None)
    assert [list(t) for t in targets] == [["ema"]]  # not the params, not the optimizer state
    assert step == 3 and jax.tree.structure(got) == jax.tree.structure(ema)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(ema), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_paths_inside_a_checkpoints_config_are_not_used(srcnn_run, tmp_path, monkeypatch, capsys):
    from PIL import Image

    from vsr_jax.errors import UserError
    from vsr_jax.evaluate import __main__ as vsr_eval

    theirs = tmp_path / "their_videos"  # the folder the config names: vsr-eval used it before
    theirs.mkdir()
    uh.write_video(theirs / "theirs.mp4", uh.moving_frames(4, 16, 16))
    paths = {
        "path": str(theirs),
        "cache_dir": str(tmp_path / "their_cache"),
        "manual_dir": str(tmp_path / "their_vimeo"),
        "tfds_data_dir": str(tmp_path / "their_tfds"),
    }
    workdir = _copy(srcnn_run, tmp_path)
    _edit_config(workdir, lambda c: c["data"].update(name="video_folder", **paths))
    config, _, params, _ = load_run(str(workdir), None)
    assert all(config.data[k] == "" for k in paths) and params["Conv_0"]["kernel"].shape == (9, 9, 3, 64)

    ours = tmp_path / "ours"  # the test set given on the command line: one folder of frames
    (ours / "clip").mkdir(parents=True)
    for i, frame in enumerate(uh.moving_frames(6, 16, 20)):
        Image.fromarray(frame).save(ours / "clip" / f"{i:03d}.png")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # the default frame cache, not the config's
    with flagsaver.flagsaver():
        flags.FLAGS(["vsr-eval", f"--workdir={workdir}"])
        with pytest.raises(UserError, match="needs --data_dir"):  # the run's own split: the config's is not used
            vsr_eval.test_pairs(config, {})
        flags.FLAGS(["vsr-eval", f"--workdir={workdir}", f"--data_dir={ours}"])
        pairs, name, _ = vsr_eval.test_pairs(config, {})
    assert name == "video_folder" and [p.name.split("/")[0] for p in pairs] == ["clip"]
    assert pairs[0].hr.shape[1:] == (16, 20, 3) and os.listdir(tmp_path / "xdg" / "vsr_jax" / "frames")
    assert os.listdir(theirs) == ["theirs.mp4"]
    assert not any((tmp_path / f"their_{k}").exists() for k in ("cache", "vimeo", "tfds"))


# ------------------------------------------------------------------------ log filter


def test_orbax_read_only_notices_are_hidden_unless_verbose():
    notice = pylogging.LogRecord(
        "absl", pylogging.WARNING, "/x/orbax/checkpoint/checkpoint_manager.py", 849, "Given directory is read only=%s",
        ("/run",), None,
    )  # fmt: skip
    other = pylogging.LogRecord(
        "absl", pylogging.WARNING, "/x/orbax/checkpoint/checkpoint_manager.py", 1, "save failed", (), None
    )
    keep = cli._DropLibraryInfo().filter  # noqa: SLF001
    assert not keep(notice) and keep(other)
    before = logging.get_verbosity()
    logging.set_verbosity(logging.DEBUG)  # `-v 1`
    try:
        assert keep(notice)
    finally:
        logging.set_verbosity(before)
