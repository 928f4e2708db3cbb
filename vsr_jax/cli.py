"""What the command-line entry points share: the one exit path and quiet library logs.

Every CLI's `main` (and absl flags parser) runs inside `exit_path(PROG)` (a context manager,
also a decorator), or through `call` (argparse), so each ends the same way:

* `UserError` (bad input: config, paths, files): `PROG: error: <one line>` on stderr, exit 1.
  Library code raises it and never exits the process itself.
* `Exit(code, message)`: `PROG: <message>` (when given), exit `code`; `stopped(signum, ...)`
  is the one for a clean stop by a signal: 128 + N, as a shell reports a signalled job, so
  schedulers and `&&` chains do not take the run for finished.
* An error for which `exit_at_once` holds leaves by `os._exit(1)` right after its line:
  threads that failed with it (Orbax's writers when the disk fails) would print tracebacks
  while the interpreter shuts down.
"""

from __future__ import annotations

import contextlib
import logging as pylogging
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator

from absl import logging

from vsr_jax.errors import UserError

_CHATTY = ("/orbax/", "/jax/_src/", "/clu/periodic_actions", "/tensorflow/")
# Orbax warns on every read-only CheckpointManager (vsr-eval and vsr-upscale open runs
# read-only on purpose): "read_only=True, setting create=False", "Given directory is read only".
_READ_ONLY = re.compile(r"read[ _]only", re.IGNORECASE)


class Exit(Exception):
    """Ends the command with status `code`, after `PROG: message` on stderr when a message is given."""

    def __init__(self, code: int, message: str = ""):
        super().__init__(message)
        self.code, self.message = int(code), message


def stopped(signum: int, detail: str) -> Exit:
    """The exit of a command stopped cleanly by signal `signum`: `PROG: stopped by SIGNAME <detail>`, 128 + N."""
    return Exit(128 + int(signum), f"stopped by {signal.Signals(signum).name} {detail}")


def error_line(prog: str, error: BaseException | str) -> str:
    return f"{prog}: error: {error}"


def _leave_now(prog: str, line: str) -> None:
    # straight to fd 2: sys.stderr may be captured at this point (see upscale.sources.load_model)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os.write(2, f"{line}\n".encode())
    os._exit(1)


@contextlib.contextmanager
def exit_path(prog: str, *, exit_at_once: bool | Callable[[UserError], bool] = False) -> Iterator[None]:
    """Turns what escapes the block (or the decorated function) into the command's exit
    (module docstring); `exit_at_once`: whether a UserError leaves by `os._exit(1)`."""
    try:
        yield
    except Exit as e:
        if e.message:
            print(f"{prog}: {e.message}", file=sys.stderr, flush=True)
        sys.exit(e.code)
    except UserError as e:
        at_once = exit_at_once(e) if callable(exit_at_once) else exit_at_once
        if at_once:
            _leave_now(prog, error_line(prog, e))
        print(error_line(prog, e), file=sys.stderr, flush=True)
        sys.exit(1)


def call(main: Callable[[list[str]], int | None], argv: list[str], *, prog: str, **exit_kwargs) -> None:
    """An argparse CLI: exits with `main(argv)`'s status (None: 0) behind `exit_path(prog)`."""
    with exit_path(prog, **exit_kwargs):
        code = main(argv)
    sys.exit(code or 0)


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
