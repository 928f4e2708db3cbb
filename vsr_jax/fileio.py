"""Writing files so that nobody ever sees half of one: the one write-then-rename of the package.

A file is written under a fresh temporary name in its destination folder (`mkstemp`: never a
name someone else's file could have) and renamed over the destination only once it is
complete; on any error the temporary file is removed and the destination is untouched.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from typing import IO, Any


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", **open_kwargs) -> Iterator[IO[Any]]:
    """`with atomic_write(path) as f: ...` writes `path` as a whole or not at all.

    `mode` is "w" (text) or "wb"; `open_kwargs` go to `open` (newline, encoding). The file
    gets the mode a plain `open` would give it (mkstemp's are private).
    """
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    path = os.fspath(path)
    folder, name = os.path.split(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, mode, **open_kwargs) as f:
            yield f
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_write(path) as f:
        f.write(text)


def write_json(path: str | os.PathLike, obj: Any, **dump_kwargs) -> None:
    """`obj` as JSON (`json.dump`'s keyword arguments, e.g. indent, sort_keys)."""
    with atomic_write(path) as f:
        json.dump(obj, f, **dump_kwargs)
