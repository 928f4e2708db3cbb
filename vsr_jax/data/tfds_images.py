"""Photo datasets from TensorFlow Datasets for single-image SR (`data.name = "cats_vs_dogs"`).

The dataset is downloaded and prepared by TFDS the first time (≈ 800 MB for
cats_vs_dogs, into `data.tfds_data_dir`, default ~/tensorflow_datasets) in the
random-access ArrayRecord format; later runs read it from there with no network.
cats_vs_dogs has one split of 23,262 images; its first 95 % is `train` and the last 5 %
`test` (deterministic, by position).
"""

from __future__ import annotations

from vsr_jax.errors import UserError

SPLITS = {"cats_vs_dogs": {"train": "train[:95%]", "test": "train[95%:]"}}


def load(name: str, split: str, *, data_dir: str | None = None):
    """A random-access sequence of {"image": (H, W, 3) uint8, ...} records of `split`."""
    import tensorflow_datasets as tfds

    if name not in SPLITS:
        raise UserError(f"unknown TFDS image dataset {name!r}; available: {', '.join(SPLITS)}")
    builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
    try:
        builder.download_and_prepare()
    except Exception as e:  # noqa: BLE001 - network, disk or TFDS failures all end here
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(
            f"cannot prepare TFDS dataset {name} in {builder.data_dir} ({first}); it needs a network connection "
            "the first time, or copy a prepared copy there (--config.data.tfds_data_dir)"
        ) from e
    return builder.as_data_source(split=SPLITS[name][split])
