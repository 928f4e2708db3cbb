"""Vimeo-90K septuplet builder on a tiny fake tree: layouts (folder, flat, zip), order, pixels, reuse, errors."""

from __future__ import annotations

import pathlib
import zipfile

import numpy as np
import pytest
import tensorflow_datasets as tfds
from PIL import Image
from tensorflow_datasets.core import shuffle

from vsr_jax.data import vimeo90k
from vsr_jax.errors import UserError

H, W = 16, 24
# Out of numeric order on purpose: the splits must follow the lists, not sort the ids.
IDS = {"train": ["00002/0001", "00001/0001", "00001/0002"], "test": ["00003/0005", "00003/0002"]}


def _frame(sequence_index: int, frame_index: int) -> np.ndarray:
    """(H, W, 3) uint8: R encodes (sequence, frame), G the row, B the column, so order and layout are checked."""
    frame = np.empty((H, W, 3), np.uint8)
    frame[..., 0] = 10 * sequence_index + frame_index + 1
    frame[..., 1] = np.arange(H)[:, None] * 3
    frame[..., 2] = np.arange(W)[None, :] * 5
    return frame


def _expected() -> dict[str, list[tuple[str, np.ndarray]]]:
    """{split: [(id, frames (7, H, W, 3))]} in list order."""
    expected, sequence_index = {}, 0
    for split, ids in IDS.items():
        expected[split] = []
        for sequence_id in ids:
            expected[split].append((sequence_id, np.stack([_frame(sequence_index, f) for f in range(7)])))
            sequence_index += 1
    return expected


def _write_folder(parent: pathlib.Path) -> pathlib.Path:
    """Writes parent/vimeo_septuplet/ (lists with a blank line and trailing spaces, sequences/*/im1..7.png)."""
    root = parent / "vimeo_septuplet"
    for split, examples in _expected().items():
        for sequence_id, frames in examples:
            folder = root / "sequences" / sequence_id
            folder.mkdir(parents=True)
            for f, frame in enumerate(frames):
                Image.fromarray(frame).save(folder / f"im{f + 1}.png")
        first, *rest = IDS[split]
        # Blank lines (also in the middle) and trailing whitespace, as in the official lists.
        text = f"{first}  \n\n" + "".join(f"{sequence_id}\r\n" for sequence_id in rest) + "\n"
        (root / vimeo90k.LISTS[split]).write_text(text)
    return root


def _write_zip(folder: pathlib.Path, zip_path: pathlib.Path) -> pathlib.Path:
    """Zips ``folder`` with members under "vimeo_septuplet/...", like the official zip."""
    with zipfile.ZipFile(zip_path, "w") as archive:
        for path in sorted(folder.rglob("*")):
            archive.write(path, "vimeo_septuplet/" + path.relative_to(folder).as_posix())
    return zip_path


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """{"folder": manual_dir with vimeo_septuplet/, "zip": manual_dir with only vimeo_septuplet.zip}."""
    base = tmp_path_factory.mktemp("vimeo")
    folder_dir = base / "folder"
    root = _write_folder(folder_dir)
    zip_dir = base / "zip"
    zip_dir.mkdir()
    _write_zip(root, zip_dir / vimeo90k.ZIP_NAME)
    return {"folder": folder_dir, "zip": zip_dir}


def _load_all(manual_dir, data_dir) -> dict[str, list[dict]]:
    return {split: list(vimeo90k.load(split, manual_dir=str(manual_dir), data_dir=str(data_dir))) for split in IDS}


def _assert_matches_expected(loaded: dict[str, list[dict]]) -> None:
    for split, examples in _expected().items():
        assert [example["id"] for example in loaded[split]] == [sequence_id for sequence_id, _ in examples]
        for example, (_, frames) in zip(loaded[split], examples, strict=True):
            assert example["frames"].dtype == np.uint8
            assert example["frames"].shape == (7, H, W, 3)
            np.testing.assert_array_equal(example["frames"], frames)


def _one_line_error(excinfo, *needles: str) -> str:
    message = str(excinfo.value)
    assert "\n" not in message, message
    assert any(needle in message for needle in needles), message
    return message


def test_list_file_has_blank_lines(trees):
    text = (trees["folder"] / "vimeo_septuplet" / "sep_trainlist.txt").read_text()
    assert "\n\n" in text and "  \n" in text  # the parser must drop these


def test_folder_layout_order_pixels_and_reuse(trees, tmp_path):
    data_dir = tmp_path / "tfds"
    train = vimeo90k.load("train", manual_dir=str(trees["folder"]), data_dir=str(data_dir))
    test = vimeo90k.load("test", manual_dir=str(trees["folder"]), data_dir=str(data_dir))
    assert (len(train), len(test)) == (3, 2)
    _assert_matches_expected({"train": list(train), "test": list(test)})
    # Random access, negative index, batch access.
    assert train[-1]["id"] == IDS["train"][-1]
    assert [example["id"] for example in train.__getitems__([2, 0])] == [IDS["train"][2], IDS["train"][0]]
    with pytest.raises(IndexError):
        train[3]

    # The PNG files are stored byte for byte (no decode / re-encode), in order im1..im7, in the serialized record.
    builder = vimeo90k.Vimeo90kSeptuplet(data_dir=str(data_dir))
    raw = builder.as_data_source(split="test", deserialize_method=tfds.decode.DeserializeMethod.RAW_BYTES)
    sequence_folder = trees["folder"] / "vimeo_septuplet" / "sequences" / IDS["test"][0]
    offsets = [raw[0].find((sequence_folder / f"im{f}.png").read_bytes()) for f in range(1, 8)]
    assert min(offsets) >= 0 and offsets == sorted(offsets), offsets

    # A second call reuses the prepared data: no regeneration, and the manual files are no longer needed.
    written = {path: path.stat().st_mtime_ns for path in data_dir.rglob("*") if path.is_file()}
    again = vimeo90k.load("train", manual_dir=str(tmp_path / "gone"), data_dir=str(data_dir))
    assert [example["id"] for example in again] == IDS["train"]
    assert {path: path.stat().st_mtime_ns for path in data_dir.rglob("*") if path.is_file()} == written


def test_zip_gives_the_same_data_as_the_folder(trees, tmp_path):
    from_zip = _load_all(trees["zip"], tmp_path / "zip")
    _assert_matches_expected(from_zip)
    from_folder = _load_all(trees["folder"], tmp_path / "folder")
    for split in IDS:
        assert [e["id"] for e in from_zip[split]] == [e["id"] for e in from_folder[split]]
        for a, b in zip(from_zip[split], from_folder[split], strict=True):
            np.testing.assert_array_equal(a["frames"], b["frames"])


def test_flat_layout(trees, tmp_path):
    """manual_dir holding the lists and sequences/ directly (the folder's contents)."""
    _assert_matches_expected(_load_all(trees["folder"] / "vimeo_septuplet", tmp_path / "tfds"))


def test_missing_manual_dir(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(UserError) as excinfo:
        vimeo90k.load("train", manual_dir=str(missing), data_dir=str(tmp_path / "tfds"))
    message = _one_line_error(excinfo, vimeo90k.URL)
    assert str(missing) in message


@pytest.mark.parametrize("content", ["empty", "unrelated"])
def test_manual_dir_without_lists_or_zip(tmp_path, content):
    manual = tmp_path / "manual"
    manual.mkdir()
    if content == "unrelated":
        (manual / "notes.txt").write_text("hello")
    with pytest.raises(UserError) as excinfo:
        vimeo90k.load("train", manual_dir=str(manual), data_dir=str(tmp_path / "tfds"))
    message = _one_line_error(excinfo, vimeo90k.URL)
    assert vimeo90k.ZIP_NAME in message


def test_missing_list(tmp_path):
    root = _write_folder(tmp_path / "manual")
    (root / "sep_testlist.txt").unlink()
    with pytest.raises(UserError) as excinfo:
        vimeo90k.load("train", manual_dir=str(tmp_path / "manual"), data_dir=str(tmp_path / "tfds"))
    _one_line_error(excinfo, str(root / "sep_testlist.txt"))
    assert vimeo90k.URL in str(excinfo.value)


def test_zip_without_lists(tmp_path):
    manual = tmp_path / "manual"
    manual.mkdir()
    with zipfile.ZipFile(manual / vimeo90k.ZIP_NAME, "w") as archive:
        archive.writestr("vimeo_septuplet/readme.txt", "not the dataset")
    with pytest.raises(UserError) as excinfo:
        vimeo90k.load("test", manual_dir=str(manual), data_dir=str(tmp_path / "tfds"))
    _one_line_error(excinfo, vimeo90k.URL)


@pytest.mark.parametrize("layout", ["folder", "zip"])
@pytest.mark.parametrize("sequence", [0, 2], ids=["first", "later"])
def test_missing_frame(tmp_path, layout, sequence):
    """im5.png missing: the first sequence is caught up front, a later one while generating; both one line."""
    root = _write_folder(tmp_path / "folder")
    sequence_id = IDS["train"][sequence]
    missing = root / "sequences" / sequence_id / "im5.png"
    missing.unlink()
    manual = tmp_path / "folder"
    if layout == "zip":
        manual = tmp_path / "zip"
        manual.mkdir()
        _write_zip(root, manual / vimeo90k.ZIP_NAME)
    data_dir = tmp_path / "tfds"
    with pytest.raises(UserError) as excinfo:
        vimeo90k.load("test", manual_dir=str(manual), data_dir=str(data_dir))
    message = _one_line_error(excinfo, vimeo90k.URL)
    assert f"{sequence_id}/im5.png" in message
    if layout == "folder":
        assert str(missing) in message

    # Nothing half-written is taken for a prepared dataset: once fixed, the same data_dir prepares fine.
    if layout == "folder":
        Image.fromarray(_frame(sequence, 4)).save(missing)
        _assert_matches_expected(_load_all(manual, data_dir))


def test_error_wrapped_by_tfds_still_reaches_the_caller_as_one_line(trees, tmp_path, monkeypatch):
    """TFDS prefixes errors raised while encoding an example with the whole example: load() restores the line."""

    class _Unreadable:
        def read(self):
            raise vimeo90k._error("frame X is missing: get it from " + vimeo90k.URL)

    def generate(self, manual_dir, split, ids):
        yield 0, {"id": ids[0], "frames": [_Unreadable()] * 7}

    monkeypatch.setattr(vimeo90k.Vimeo90kSeptuplet, "_generate_examples", generate)
    with pytest.raises(UserError) as excinfo:
        vimeo90k.load("train", manual_dir=str(trees["folder"]), data_dir=str(tmp_path / "tfds"))
    assert str(excinfo.value) == "frame X is missing: get it from " + vimeo90k.URL


def test_keys_keep_list_order_and_spread_over_tfds_buckets():
    """TFDS sorts by key, in buckets of key * 1000 // 2**128 loaded whole into memory: keys must spread over them."""
    count = 64_612  # the real train list
    keys = [vimeo90k._ordered_key(i, count) for i in range(count)]
    assert keys == sorted(keys) and len(set(keys)) == count and keys[-1] < 2**128
    buckets = np.bincount([shuffle.get_bucket_number(k, shuffle.BUCKETS_NUMBER) for k in keys])
    assert buckets.max() <= -(-count // shuffle.BUCKETS_NUMBER) + 1


def test_order_kept_when_tfds_spills_to_disk_buckets(trees, tmp_path, monkeypatch):
    """Splits over 1 GB go through TFDS's on-disk buckets (forced here): the list order must survive."""
    monkeypatch.setattr(shuffle, "MAX_MEM_BUFFER_SIZE", 0)
    monkeypatch.setattr(shuffle, "BUCKETS_NUMBER", 4)  # 1000 by default: slow to read back; the 3 train keys span 3
    _assert_matches_expected(_load_all(trees["zip"], tmp_path / "tfds"))


def test_parse_list():
    assert vimeo90k._parse_list("00001/0001 \r\n\n  \n00001/0002\n") == ["00001/0001", "00001/0002"]


@pytest.mark.parametrize(
    "bad",
    ["../../etc", "/etc/passwd", "00001/0001/../../x", "00001/../0001", "1/1", "000001/0001", "00001\\0001",
     "00001/0001 00001/0002", "\uff10\uff10\uff10\uff10\uff11/0001", "00001/000a"],
)  # fmt: skip
def test_list_ids_must_be_five_digits_slash_four(tmp_path, bad):
    """Ids become paths (sequences/ID/im1.png): anything but NNNNN/NNNN is refused, naming file, line and id."""
    root = _write_folder(tmp_path / "manual")
    listing = root / vimeo90k.LISTS["test"]
    listing.write_text(f"00003/0005\n\n  {bad}  \n00003/0002\n")
    with pytest.raises(UserError) as excinfo:
        vimeo90k.load("test", manual_dir=str(tmp_path / "manual"), data_dir=str(tmp_path / "tfds"))
    message = _one_line_error(excinfo, "line 3")
    assert message.startswith(f"Vimeo-90K list {listing} line 3: {bad!r} is not a sequence id"), message
    assert not (tmp_path / "tfds").exists()  # refused before TFDS prepares anything


def test_frame_header_over_the_pixel_limit_is_refused(tmp_path):
    """A frame whose PNG header claims 20000×20000 (a decompression bomb) is refused before TFDS decodes it."""
    import struct
    import zlib

    root = _write_folder(tmp_path / "manual")
    ihdr = b"IHDR" + struct.pack(">IIBBBBB", 20000, 20000, 8, 2, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + ihdr + struct.pack(">I", zlib.crc32(ihdr))
    (root / "sequences" / IDS["train"][0] / "im2.png").write_bytes(png)
    with pytest.raises(UserError) as excinfo:
        vimeo90k.load("train", manual_dir=str(tmp_path / "manual"), data_dir=str(tmp_path / "tfds"))
    message = _one_line_error(excinfo, "im2.png")
    assert "20000×20000 = 400,000,000 pixels, over the limit of 67,108,864" in message


def test_not_rgb_png_is_rejected(tmp_path):
    root = _write_folder(tmp_path / "manual")
    Image.fromarray(_frame(0, 0)[..., 0]).save(root / "sequences" / IDS["train"][0] / "im3.png")  # grayscale
    with pytest.raises(UserError) as excinfo:
        vimeo90k.load("train", manual_dir=str(tmp_path / "manual"), data_dir=str(tmp_path / "tfds"))
    _one_line_error(excinfo, "im3.png")


def vimeo_config(trees, tmp_path, **overrides):
    """A tiny training config on the folder tree, prepared under tmp_path/tfds."""
    from tests.conftest import tiny_unet_config

    where = {"data.manual_dir": str(trees["folder"]), "data.tfds_data_dir": str(tmp_path / "tfds")}
    return tiny_unet_config(**{"data.name": "vimeo90k"}, **where, **overrides)


def test_pipeline_serves_vimeo_septuplets_in_order(trees, tmp_path):
    from vsr_jax.data import degrade, pipeline

    overrides = {"data.num_frames": 7, "data.patch_size": 8, "data.augment": False, "batch_size": 6}
    config = vimeo_config(trees, tmp_path, **overrides)
    source = pipeline.make_source(config.data, "train")
    assert len(source) == 3
    (b,) = [next(pipeline.make_train_dataset(config).as_numpy_iterator())]
    assert b["lr"].shape == (6, 7, 8, 8, 3) and b["hr"].shape == (6, 7, 16, 16, 3)
    red = np.round(b["hr"][:, :, 0, 0, 0] * 255).astype(int)  # 10·sequence + frame + 1
    np.testing.assert_array_equal(red - red[:, :1], np.tile(np.arange(7), (6, 1)))  # im1 … im7 in order
    assert set(red[:, 0] // 10) == {0, 1, 2}  # an epoch of 3 windows shows every train sequence
    lr = np.asarray(degrade.degrade(b["hr"], 2))
    np.testing.assert_allclose(b["lr"][:, :, 2:-2, 2:-2], lr[:, :, 2:-2, 2:-2], atol=0.5 / 255 + 1e-5)
    pairs = pipeline.load_clip_pairs(config.data, "test")
    assert [p.name for p in pairs] == IDS["test"] and pairs[0].lr.shape == (7, H // 2, W // 2, 3)


def test_training_windows_decode_only_their_frames(trees, tmp_path, monkeypatch):
    from vsr_jax.data import pipeline

    config = vimeo_config(trees, tmp_path, **{"data.scale": 2, "data.num_frames": 3, "data.window_stride": 2})
    source = pipeline.make_source(config.data, "train")
    records = vimeo90k.load("train", manual_dir=str(trees["folder"]), data_dir=str(tmp_path / "tfds"))
    assert len(source) == 3 * 3  # windows starting at frames 0, 2, 4 of each sequence
    decoded = []
    decode = records.decode
    monkeypatch.setattr(source._records, "decode", lambda png: decoded.append(png) or decode(png))
    for i in range(len(source)):
        r, k = divmod(i, 3)
        np.testing.assert_array_equal(source.window(i), records[r]["frames"][2 * k : 2 * k + 3])
    assert len(decoded) == 3 * len(source)  # three PNGs per window, not seven
