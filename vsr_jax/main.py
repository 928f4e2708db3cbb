"""Trains a model: `python -m vsr_jax.main --config=configs/unet.py --workdir=DIR`.

Any config field can be overridden on the command line, e.g. `--config.total_steps=100`.
Running the same command again resumes from the newest checkpoint in DIR.
"""

from __future__ import annotations

import shlex
import sys

from absl import app, flags
from ml_collections import config_flags

from vsr_jax import cli
from vsr_jax.errors import UserError

FLAGS = flags.FLAGS
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and figures.")
config_flags.DEFINE_config_file("config", None, "Path to a config file (configs/*.py).", lock_config=True)
flags.mark_flags_as_required(["config", "workdir"])
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address", "", "Multi-process run: HOST:PORT of process 0 (see vsr_jax.distributed)."
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 0, "Multi-process run: how many processes in all.")
_PROCESS_ID = flags.DEFINE_integer("process_id", -1, "Multi-process run: this process's index, 0..N-1.")


def _checkpoint_write_failed(e: UserError) -> bool:
    """Orbax's writer threads, failed with the disk, print tracebacks when the interpreter shuts
    down; the state is on disk as far as it can be: leave without them."""
    checkpointing = sys.modules.get("vsr_jax.checkpointing")  # not loaded: not its error
    return checkpointing is not None and isinstance(e, checkpointing.CheckpointWriteError)


@cli.exit_path("vsr-train", exit_at_once=_checkpoint_write_failed)
def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    from vsr_jax import distributed, train

    cli.quiet_library_logs()
    distributed.initialize(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
    result = train.train_and_evaluate(FLAGS.config, _WORKDIR.value)
    if result.get("preempted"):  # after a clean save
        raise cli.stopped(
            result["signal"],
            f"at step {result['step']} (checkpoint saved); to resume, run the same command: {resume_command()}",
        )


def resume_command() -> str:
    """This process's command line, as `python -m vsr_jax.main ...`."""
    args = " ".join(shlex.quote(a) for a in sys.argv[1:])
    return f"{shlex.quote(sys.executable)} -m vsr_jax.main {args}"


def _one_line(e: BaseException) -> str:
    text = str(e).replace("\\n", "\n").replace("\\'", "'")
    lines = [ln.strip().strip("'\"").strip() for ln in text.splitlines()]
    return "; ".join(ln for ln in lines if ln) or type(e).__name__


@cli.exit_path("vsr-train")
def parse_flags(argv):
    """absl flag parsing where a bad config (missing file, unknown key, bad value) is one line."""
    try:
        rest = FLAGS(argv)
    except flags.Error as e:
        raise UserError(f"{_one_line(e)} (see --helpshort)") from None
    except (AttributeError, KeyError) as e:
        raise UserError(f"unknown config key: {_one_line(e)}") from None
    except Exception as e:  # noqa: BLE001 - e.g. a SyntaxError inside the user's config file
        raise UserError(f"cannot load --config: {type(e).__name__}: {_one_line(e).split('; ')[0]}") from None
    try:
        FLAGS.config.to_dict()  # config files load lazily: surface a broken file now
    except Exception as e:  # noqa: BLE001 - any failure inside the user's config file
        last = str(e).strip().splitlines()[-1].strip()
        raise UserError(f"cannot load --config {FLAGS['config'].config_filename!r}: {last}") from None
    return rest


def run():
    """Console-script entry point (`vsr-train`)."""
    app.run(main, flags_parser=parse_flags)


if __name__ == "__main__":
    run()
