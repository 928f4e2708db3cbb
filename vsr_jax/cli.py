"""What the command-line entry points share: quiet library logs."""

from __future__ import annotations

import logging as pylogging

from absl import logging

_CHATTY = ("/orbax/", "/jax/_src/", "/clu/periodic_actions", "/tensorflow/")


class _DropLibraryInfo(pylogging.Filter):
    """Hides INFO chatter of Orbax/JAX internals; their warnings and errors still show."""

    def filter(self, record):
        return record.levelno >= pylogging.WARNING or not any(p in record.pathname for p in _CHATTY)


def quiet_library_logs() -> None:
    logging.get_absl_handler().addFilter(_DropLibraryInfo())
