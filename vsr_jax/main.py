"""Trains a model: `python -m vsr_jax.main --config=configs/unet.py --workdir=DIR`.

Any config field can be overridden on the command line, e.g. `--config.total_steps=100`.
Running the same command again resumes from the newest checkpoint in DIR.
"""

from __future__ import annotations

import os
import shlex
import signal
import sys

from absl import app, flags
from ml_collections import config_flags

from vsr_jax import cli

FLAGS = flags.FLAGS
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and figures.")
config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py).", lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", "", "Multi-process run: HOST:PORT of process 0 (see vsr_jax.distributed)."
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 0, "Multi-process run: how many processes in all.")
_PROCESS_ID = flags.DEFINE_integer("process_id", -1, "Multi-process run: this process's index, 0..N-1.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from vsr_jax import checkpointing, distributed, train
    from vsr_jax.errors import UserError

    cli.quiet_library_logs()
    try:
        distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
        result = train.train_and_evaluate(FLAGS.config, _WORKDIR.value)
    except checkpointing.CheckpointWriteError as e:
        print(f"vsr-train: error: {e}", file=sys.stderr, flush=True)
        # Orbax's writer threads, failed with the disk, print tracebacks when the interpreter
        # shuts down; the state is on disk as far as it can be: leave without them
        os._exit(1)
    except UserError as e:
        _fail(str(e))
    if result.get("preempted"):
        # after a clean save; the exit status is the signal's (128 + N), as a shell reports a
        # signalled job, so schedulers and `&&` chains do not take the run for finished
        name = signal.Signals(result["signal"]).name
        print(
            f"vsr-train: stopped by {name} at step {result['step']} (checkpoint saved); to resume, run the same "
            f"command: {resume_command()}",
            file=sys.stderr,
        )
        sys.exit(128 + int(result["signal"]))


def resume_command() -> str:
    """This process's command line, as `python -m vsr_jax.main ...`."""
    args = " ".join(shlex.quote(a) for a in sys.argv[1:])
    return f"{shlex.quote(sys.executable)} -m vsr_jax.main {args}"


def _fail(message: str) -> None:
    print(f"vsr-train: error: {message}", file=sys.stderr)
    sys.exit(1)


def _one_line(e: BaseException) -> str:
    text = str(e).replace("\\n", "\n").replace("\\'", "'")
    lines = [ln.strip().strip("'\"").strip() for ln in text.splitlines()]
    return "; ".join(ln for ln in lines if ln) or type(e).__name__


def parse_flags(argv):
    """absl flag parsing where a bad config (missing file, unknown key, bad value) is one line."""
    try:
        rest = FLAGS(argv)
    except flags.Error as e:
        _fail(f"{_one_line(e)} (see --helpshort)")
    except (AttributeError, KeyError) as e:
        _fail(f"unknown config key: {_one_line(e)}")
    except Exception as e:  # noqa: BLE001 - e.g. a SyntaxError inside the user's config file
        _fail(f"cannot load --config: {type(e).__name__}: {_one_line(e).split('; ')[0]}")
    try:
        FLAGS.config.to_dict()  # config files load lazily: surface a broken file now
    except Exception as e:  # noqa: BLE001 - any failure inside the user's config file
        last = str(e).strip().splitlines()[-1].strip()
        _fail(f"cannot load --config {FLAGS['config'].config_filename!r}: {last}")
    return rest


def run():
    """Console-script entry point (`vsr-train`)."""
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
