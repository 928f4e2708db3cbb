"""Stop signals: SIGTERM/SIGINT end a run after its step with a checkpoint saved (a second
one at once), and every process of a multi-host run stops at the same step."""

from __future__ import annotations

import signal
import threading

from absl import logging


class Preempted(Exception):
    """A stop signal arrived where the run cannot finish its step first (a second signal,
    or during the final evaluation, after the last checkpoint is on disk)."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class StopSignals:
    """SIGTERM and SIGINT become a request, checked after each step: save, then stop.

    A second signal, or one during the final evaluation (the last checkpoint is already
    on disk), raises `Preempted` at once. In a multi-process run all processes must stop
    at the same step: SIGTERM is left to JAX's preemption service, which Orbax's
    `reached_preemption` reads (`requested`), and SIGINT to Python.
    """

    def __init__(self, multi_process: bool):
        self.signum: int | None = None
        self.multi_process = multi_process
        self.immediate = False
        self._previous = {}
        if threading.current_thread() is threading.main_thread() and not multi_process:
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._previous[sig] = signal.signal(sig, self._handle)

    def _handle(self, signum, frame):
        name = signal.Signals(signum).name
        if self.signum is not None or self.immediate:
            logging.warning("%s received: stopping now", name)
            raise Preempted(signum)
        logging.warning("%s received: saving a checkpoint after this step, then stopping (again: stop at once)", name)
        self.signum = signum

    def requested(self, ckpt, step: int) -> bool:
        """Whether to stop after `step`: a signal arrived here or, in a multi-process run,
        Orbax's preemption sync point says every process stops at this step."""
        if self.signum is None and self.multi_process and ckpt.reached_preemption(step):
            self.signum = int(signal.SIGTERM)
        return self.signum is not None

    def restore(self):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


def stopped(signum: int, step: int, checkpoint_dir: str) -> dict:
    """Logs how to resume a run stopped by `signum` after `step`; the run's result."""
    logging.warning(
        "stopped by %s at step %d; checkpoint saved in %s", signal.Signals(signum).name, step, checkpoint_dir
    )
    logging.warning("to resume, run the same command again (same --workdir): it continues from step %d", step)
    return {"step": step, "preempted": True, "signal": int(signum)}
