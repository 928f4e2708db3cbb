"""What the command-line entry points share: quiet library logs."""

from __future__ import annotations

import logging as pylogging
import re

from absl import logging

_CHATTY = ("/orbax/", "/jax/_src/", "/clu/periodic_actions", "/tensorflow/")
# Orbax warns on every read-only CheckpointManager (vsr-eval and vsr-upscale open runs
# read-only on purpose): "read_only=True, setting create=False", "Given directory is read only".
_READ_ONLY = re.compile(r"read[ _]only", re.IGNORECASE)


class _DropLibraryInfo(pylogging.Filter):
    """Hides INFO chatter of Orbax/JAX internals and Orbax's read-only notices; their other
    warnings and errors still show. With absl's `--verbosity=1` (`-v 1`) everything shows."""

    def filter(self, record):
        if logging.level_debug():
            return True
        if not any(p in record.pathname for p in _CHATTY):
            return True
        if "/orbax/" in record.pathname and _READ_ONLY.search(record.getMessage()):
            return False
        return record.levelno >= pylogging.WARNING


def quiet_library_logs() -> None:
    logging.get_absl_handler().addFilter(_DropLibraryInfo())
