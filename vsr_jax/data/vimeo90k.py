"""Vimeo-90K septuplets (Xue et al., "Video Enhancement with Task-Oriented Flow", IJCV 2019) as a TFDS dataset.

The dataset (91,701 clips of 7 consecutive 448×256 frames, ~82 GB) cannot be downloaded by TFDS: fetch
``vimeo_septuplet.zip`` from http://data.csail.mit.edu/tofu/dataset/vimeo_septuplet.zip (project page
http://toflow.csail.mit.edu/) and put it into a ``manual_dir`` of your choice. The official layout, once unpacked::

    vimeo_septuplet/
        sep_trainlist.txt        # 64,612 lines like "00001/0001" (blank lines and trailing spaces are ignored;
                                 # any other line that is not NNNNN/NNNN, e.g. "../../etc", is an error)
        sep_testlist.txt         # 7,824 lines
        sequences/00001/0001/im1.png ... im7.png

``manual_dir`` may hold any one of (looked for in this order):

* the contents of that folder directly (``manual_dir/sep_trainlist.txt``, ``manual_dir/sequences/...``);
* the unpacked folder (``manual_dir/vimeo_septuplet/...``);
* the zip itself (``manual_dir/vimeo_septuplet.zip``): the PNGs are read straight from it, nothing is extracted.

Splits ``train`` and ``test`` follow ``sep_trainlist.txt`` / ``sep_testlist.txt`` exactly, in list order (shuffling
is disabled). Each example holds the high-resolution frames only (low-resolution inputs are made from them, see
``vsr_jax.data.degrade``); the original PNG bytes are stored unchanged, so preparing copies ~82 GB into ``data_dir``.

Usage::

    from vsr_jax.data import vimeo90k

    train = vimeo90k.load("train", manual_dir="/data/vimeo", data_dir="/data/tfds")  # prepares once (hours)
    len(train)               # 64612
    example = train[0]
    example["frames"]        # uint8 (7, 256, 448, 3): im1..im7, RGB
    example["id"]            # "00001/0001"

Any problem with the manual files (missing folder, list or frame) is raised as a one-line ``vsr_jax.errors.UserError``
saying what is missing and where to get it.
"""

from __future__ import annotations

import operator
import os
import re
import struct
import zipfile
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from vsr_jax import video_io
from vsr_jax.errors import UserError

NAME = "vimeo90k_septuplet"
URL = "http://data.csail.mit.edu/tofu/dataset/vimeo_septuplet.zip"
HOMEPAGE = "http://toflow.csail.mit.edu/"
ZIP_NAME = "vimeo_septuplet.zip"
FOLDER_NAME = "vimeo_septuplet"
LISTS = {"train": "sep_trainlist.txt", "test": "sep_testlist.txt"}
NUM_FRAMES = 7
FILE_FORMAT = "array_record"

_GET_IT = f"download {ZIP_NAME} (~82 GB) from {URL} and put it, or its unpacked {FOLDER_NAME}/ folder, in"
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# A sequence id: 5 digits / 4 digits. Ids become paths (sequences/ID/im1.png), so nothing
# else (.., absolute paths, separators) may come from a list file.
_SEQUENCE_ID = re.compile(r"[0-9]{5}/[0-9]{4}")

_CITATION = """\
@article{xue2019video,
  title={Video Enhancement with Task-Oriented Flow},
  author={Xue, Tianfan and Chen, Baian and Wu, Jiajun and Wei, Donglai and Freeman, William T},
  journal={International Journal of Computer Vision (IJCV)},
  volume={127},
  number={8},
  pages={1106--1125},
  year={2019},
  publisher={Springer}
}
"""


def _error(message: str) -> UserError:
    """A UserError that remembers its one-line message even if TFDS rewrites ``args`` on the way out."""
    error = UserError(message)
    error.one_line = message  # type: ignore[attr-defined]
    return error


def _frame_name(i: int) -> str:
    return f"im{i + 1}.png"


def _parse_list(text: str, where: str = "") -> list[str]:
    """Sequence ids ("00001/0001") of one list file `where`, in order; blank lines and surrounding whitespace
    dropped. Raises UserError naming the line of anything that is not an id of the form NNNNN/NNNN."""
    ids = []
    for number, line in enumerate(text.splitlines(), 1):
        sequence_id = line.strip()
        if not sequence_id:
            continue
        if not _SEQUENCE_ID.fullmatch(sequence_id):
            raise _error(
                f"Vimeo-90K list {where} line {number}: {sequence_id[:80]!r} is not a sequence id of the form "
                f"NNNNN/NNNN (e.g. 00001/0001); fix the line or re-download {ZIP_NAME} from {URL}"
            )
        ids.append(sequence_id)
    return ids


def _check_png(data: bytes, where: str) -> tuple[int, int]:
    """(width, height) from the PNG header; raises unless it is an 8-bit RGB PNG. Does not decode the pixels."""
    # Signature (8 bytes), IHDR length (4) and type (4), then width, height (big-endian u32), bit depth, colour type.
    if len(data) < 26 or data[:8] != _PNG_SIGNATURE or data[12:16] != b"IHDR":
        raise _error(f"Vimeo-90K frame {where} is not a PNG file: re-download {ZIP_NAME} from {URL}")
    width, height, bit_depth, colour_type = struct.unpack(">IIBB", data[16:26])
    try:  # TFDS decodes the frames later: refuse a decompression bomb now
        video_io.check_frame_size(f"Vimeo-90K frame {where} is", width, height)
    except video_io.VideoError as e:
        raise _error(str(e)) from e
    if bit_depth != 8 or colour_type != 2:
        raise _error(
            f"Vimeo-90K frame {where} is not an 8-bit RGB PNG (bit depth {bit_depth}, colour type {colour_type}): "
            f"re-download {ZIP_NAME} from {URL}"
        )
    return width, height


def _ordered_key(index: int, count: int) -> int:
    """Example key for the ``index``-th of ``count`` examples: increasing with ``index``, spread over [0, 2**128).

    With ``disable_shuffling`` TFDS writes examples in key order, and once a split exceeds 1 GB it sorts them in 1000
    on-disk buckets chosen by ``key * 1000 // 2**128``, each loaded whole into memory. Plain indices would all land in
    bucket 0, i.e. the whole ~73 GB train split in RAM; spread keys put ~65 sequences (~90 MB) in each bucket.
    """
    return index * ((1 << 128) // count)


class _Source:
    """Read access to the manual files: a folder (``root`` holds the lists and ``sequences/``) or the zip."""

    def __init__(self, manual_dir: str):
        self.manual_dir = manual_dir
        self.root: str | None = None  # folder holding the lists, when unpacked
        self.zip_path: str | None = None
        self.zip_prefix = ""  # member-name prefix of the lists inside the zip ("vimeo_septuplet/")
        if not os.path.isdir(manual_dir):
            raise _error(f"Vimeo-90K manual_dir {manual_dir} does not exist: {_GET_IT} {manual_dir}")
        for root in (manual_dir, os.path.join(manual_dir, FOLDER_NAME)):
            if any(os.path.isfile(os.path.join(root, name)) for name in LISTS.values()):
                self.root = root
                return
        zip_path = os.path.join(manual_dir, ZIP_NAME)
        if os.path.isfile(zip_path):
            self.zip_path = zip_path
            return
        raise _error(
            f"no Vimeo-90K septuplets in {manual_dir} (looked for {LISTS['train']}, {FOLDER_NAME}/{LISTS['train']} "
            f"and {ZIP_NAME}): {_GET_IT} {manual_dir}"
        )

    def describe(self, relative: str) -> str:
        """Where a file (path relative to the dataset folder) lives, for messages."""
        if self.root is not None:
            return os.path.join(self.root, relative)
        return f"{self.zip_path}:{self.zip_prefix}{relative}"

    def open_zip(self) -> zipfile.ZipFile:
        try:
            return zipfile.ZipFile(self.zip_path)
        except (zipfile.BadZipFile, OSError) as e:
            raise _error(f"{self.zip_path} is not a readable zip ({e}): re-download it from {URL}") from e

    def _find_zip_prefix(self, archive: zipfile.ZipFile) -> None:
        prefixes = [
            name[: -len(list_name)]
            for name in archive.namelist()
            for list_name in LISTS.values()
            if name == list_name or name.endswith("/" + list_name)
        ]
        if not prefixes:
            raise _error(
                f"{self.zip_path} holds no {LISTS['train']} or {LISTS['test']}: it is not (all of) the Vimeo-90K "
                f"septuplet zip; re-download {ZIP_NAME} from {URL}"
            )
        self.zip_prefix = min(prefixes, key=len)  # "vimeo_septuplet/" in the official zip

    def read(self, relative: str, archive: zipfile.ZipFile | None = None) -> bytes | None:
        """Bytes of a file (path relative to the dataset folder), None if it is missing."""
        if self.root is not None:
            path = os.path.join(self.root, relative)
            if not os.path.isfile(path):
                return None
            with open(path, "rb") as f:
                return f.read()
        try:
            return archive.read(self.zip_prefix + relative)
        except KeyError:
            return None

    def read_frames(self, sequence_id: str, split: str, archive: zipfile.ZipFile | None = None) -> list[bytes]:
        """The 7 PNG files (im1..im7) of one sequence, unchanged; raises UserError if any is missing or unusable."""
        frames, sizes = [], set()
        for i in range(NUM_FRAMES):
            relative = f"sequences/{sequence_id}/{_frame_name(i)}"
            data = self.read(relative, archive)
            if data is None:
                raise _error(
                    f"Vimeo-90K frame {self.describe(relative)} is missing (sequence {sequence_id} of "
                    f"{LISTS[split]}): the manual files are incomplete; {_GET_IT} {self.manual_dir}"
                )
            sizes.add(_check_png(data, self.describe(relative)))
            frames.append(data)
        if len(sizes) > 1:
            raise _error(
                f"Vimeo-90K sequence {self.describe('sequences/' + sequence_id)} has frames of different sizes "
                f"{sorted(sizes)}: re-download {ZIP_NAME} from {URL}"
            )
        return frames

    def read_lists(self, archive: zipfile.ZipFile | None = None) -> dict[str, list[str]]:
        """{"train": ids, "test": ids} from the two list files; raises UserError if one is missing or empty."""
        if archive is not None:
            self._find_zip_prefix(archive)
        lists = {}
        for split, name in LISTS.items():
            data = self.read(name, archive)
            if data is None:
                raise _error(f"Vimeo-90K list {self.describe(name)} is missing: {_GET_IT} {self.manual_dir}")
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError as e:
                raise _error(
                    f"Vimeo-90K list {self.describe(name)} is not a text file ({e}): {_GET_IT} {self.manual_dir}"
                ) from e
            ids = _parse_list(text, self.describe(name))
            if not ids:
                raise _error(f"Vimeo-90K list {self.describe(name)} is empty: {_GET_IT} {self.manual_dir}")
            lists[split] = ids
        return lists


def check_manual_dir(manual_dir: str) -> dict[str, list[str]]:
    """Checks the manual files up front (the lists, and the first listed sequence of each split).

    Returns {"train": ids, "test": ids} in list order; raises a one-line UserError naming what is missing.
    """
    source = _Source(manual_dir)
    archive = source.open_zip() if source.zip_path else None
    try:
        lists = source.read_lists(archive)
        for split, ids in lists.items():
            source.read_frames(ids[0], split, archive)
    finally:
        if archive is not None:
            archive.close()
    return lists


class Vimeo90kSeptuplet(tfds.core.GeneratorBasedBuilder):
    """Vimeo-90K septuplets: HR frames (7, H, W, 3) uint8 per example, splits train/test from the official lists."""

    name = NAME
    # TFDS 4.9.10 finds a builder's files through `importlib_resources`, which it does not install on Python >= 3.9
    # (tensorflow/datasets#11212): give the path directly. Only used to look for an (absent) checksums.tsv here.
    code_path = epath.Path(__file__)
    VERSION = tfds.core.Version("1.0.0")
    RELEASE_NOTES = {"1.0.0": "Initial release: HR frames im1..im7 and the sequence id, official train/test lists."}
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
Download {ZIP_NAME} (~82 GB) from {URL} (project page {HOMEPAGE}) and put into manual_dir either
the zip itself (manual_dir/{ZIP_NAME}; it is read in place, not extracted) or the folder it unpacks to
(manual_dir/{FOLDER_NAME}/{LISTS["train"]}, {LISTS["test"]} and sequences/00001/0001/im1.png ...).
"""

    def _info(self) -> tfds.core.DatasetInfo:
        return tfds.core.DatasetInfo(
            builder=self,
            description=(
                "Vimeo-90K septuplets (TOFlow): 91,701 clips of 7 consecutive 448x256 RGB frames from Vimeo videos; "
                "high-resolution frames only, official train/test lists, in list order."
            ),
            features=tfds.features.FeaturesDict(
                {
                    "id": tfds.features.Text(),
                    "frames": tfds.features.Sequence(
                        tfds.features.Image(shape=(None, None, 3), encoding_format="png"), length=NUM_FRAMES
                    ),
                }
            ),
            homepage=HOMEPAGE,
            citation=_CITATION,
            disable_shuffling=True,  # keep the lists' order
        )

    def _split_generators(self, dl_manager: tfds.download.DownloadManager):
        try:
            manual_dir = os.fspath(dl_manager.manual_dir)
        except AssertionError as e:  # TFDS: missing or empty manual_dir
            raise _error(
                f"Vimeo-90K manual_dir is missing or empty: {_GET_IT} the DownloadConfig(manual_dir=...)"
            ) from e
        lists = check_manual_dir(manual_dir)
        return {split: self._generate_examples(manual_dir, split, ids) for split, ids in lists.items()}

    def _generate_examples(self, manual_dir: str, split: str, ids: Sequence[str]) -> Iterator[tuple[int, dict]]:
        """Yields (key increasing with the index in the list, {"id": str, "frames": 7 PNG byte strings}), in order."""
        source = _Source(manual_dir)
        archive = source.open_zip() if source.zip_path else None
        try:
            if archive is not None:
                source.read_lists(archive)  # sets the member-name prefix
            for index, sequence_id in enumerate(ids):
                # Bytes go through the Image feature unchanged: no decode / re-encode.
                frames = source.read_frames(sequence_id, split, archive)
                yield _ordered_key(index, len(ids)), {"id": sequence_id, "frames": frames}
        finally:
            if archive is not None:
                archive.close()


def _find_user_error(error: BaseException) -> UserError | None:
    """The UserError raised by this module somewhere in the chain of ``error`` (TFDS may wrap or rewrite it)."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, UserError):
            return error
        error = error.__cause__ or error.__context__
    return None


class Vimeo90kSource(Sequence):
    """Random access to one prepared split: item i is {"frames": uint8 (7, H, W, 3), "id": str}, in list order.

    Wraps a TFDS data source that deserializes records without decoding them (`load`; each is a
    ``tf.train.Example`` whose "frames" are the 7 PNG files, "id" the sequence id), so
    `frames(i, start, stop)` decodes only the PNGs a training window needs, with the decoder
    TFDS itself uses (`Image.decode_example_np`: OpenCV, which releases the GIL). Picklable, so
    it can feed multi-process loaders.
    """

    def __init__(self, data_source: Sequence[Any], decode: Callable[[bytes], np.ndarray]):
        self.data_source, self.decode = data_source, decode

    def __len__(self) -> int:
        return len(self.data_source)

    def _convert(self, example) -> dict[str, Any]:
        feature = example.features.feature
        return {
            "frames": np.stack([self.decode(png) for png in feature["frames"].bytes_list.value]),  # (7, H, W, 3)
            "id": feature["id"].bytes_list.value[0].decode("utf-8"),
        }

    def _index(self, index: int) -> int:
        size = len(self)
        index = operator.index(index)
        if not -size <= index < size:
            raise IndexError(f"index {index} out of range for {size} Vimeo-90K sequences")
        return index % size

    def __getitem__(self, index: int) -> dict[str, Any]:  # type: ignore[override]
        return self._convert(self.data_source[self._index(index)])

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        """A batch of items (used by batch loaders); same as ``[self[i] for i in indices]``."""
        indices = [self._index(i) for i in indices]
        if not indices:
            return []
        return [self._convert(example) for example in self.data_source.__getitems__(indices)]

    def frames(self, index: int, start: int, stop: int) -> np.ndarray:
        """Frames start..stop-1 of item `index` (uint8 (stop - start, H, W, 3)), decoding only those."""
        pngs = self.data_source[self._index(index)].features.feature["frames"].bytes_list.value[start:stop]
        return np.stack([self.decode(png) for png in pngs])

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in range(len(self)):
            yield self[i]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.data_source!r}, len={len(self)})"


def load(split: str, *, manual_dir: str, data_dir: str | None = None) -> Vimeo90kSource:
    """Random access to one split of Vimeo-90K septuplets, preparing the dataset on first use.

    Args:
      split: "train" or "test" (any TFDS split string such as "train[:1000]" works too).
      manual_dir: folder holding vimeo_septuplet.zip or its unpacked contents (see the module docstring). Only read
        while preparing: once prepared in ``data_dir``, the manual files are not needed any more.
      data_dir: TFDS data directory (default: TFDS's, ``~/tensorflow_datasets``).

    Returns:
      A `Vimeo90kSource` sequence (``len``, ``[i]``, iteration) of dicts, in list order: "frames" uint8
      (7, H, W, 3) — im1..im7, RGB, H×W = 256×448 for the real data — and "id" (str, e.g. "00001/0001").

    Raises:
      UserError: one line naming the missing manual file (folder, list, frame) and where to download the zip.
    """
    builder = Vimeo90kSeptuplet(data_dir=data_dir, file_format=FILE_FORMAT)
    if not (builder.data_path.exists() and builder.is_prepared()):  # (is_prepared alone logs a warning if absent)
        check_manual_dir(manual_dir)  # fail fast, before TFDS sets anything up
        try:
            builder.download_and_prepare(
                download_config=tfds.download.DownloadConfig(manual_dir=manual_dir), file_format=FILE_FORMAT
            )
        except Exception as e:
            user_error = _find_user_error(e)
            if user_error is None:
                raise
            raise UserError(getattr(user_error, "one_line", str(user_error).splitlines()[-1])) from e
    no_decode = tfds.decode.DeserializeMethod.DESERIALIZE_NO_DECODE
    encoded = builder.as_data_source(split=split, deserialize_method=no_decode)
    return Vimeo90kSource(encoded, builder.info.features["frames"].feature.decode_example_np)
