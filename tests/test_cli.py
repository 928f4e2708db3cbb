"""vsr_jax.cli: the one exit path every command line takes."""

import signal
import subprocess
import sys

import pytest

from tests.conftest import ROOT
from vsr_jax import cli
from vsr_jax.errors import UserError


def _exit_of(fn, capsys, **kwargs):
    with pytest.raises(SystemExit) as e:
        with cli.exit_path("prog", **kwargs):
            fn()
    return e.value.code, capsys.readouterr().err


def test_a_user_error_is_one_line_and_status_1(capsys):
    def bad():
        raise UserError("no such file x")

    assert _exit_of(bad, capsys) == (1, "prog: error: no such file x\n")


def test_exit_and_a_stop_by_signal(capsys):
    def interrupted():
        raise cli.Exit(130, "interrupted; run the same command again to resume out.mp4")

    assert _exit_of(interrupted, capsys) == (130, "prog: interrupted; run the same command again to resume out.mp4\n")

    def stopped():
        raise cli.stopped(signal.SIGTERM, "at step 7 (checkpoint saved); to resume, run the same command: x")

    code, err = _exit_of(stopped, capsys)
    assert code == 128 + signal.SIGTERM
    assert err == "prog: stopped by SIGTERM at step 7 (checkpoint saved); to resume, run the same command: x\n"
    assert _exit_of(lambda: (_ for _ in ()).throw(cli.Exit(1)), capsys) == (1, "")  # no message: no line


def test_other_errors_pass_and_the_decorator_form_returns_the_value(capsys):
    @cli.exit_path("prog")
    def main(x):
        if x < 0:
            raise ValueError("a bug, not bad input")
        return x * 2

    assert main(3) == 6
    with pytest.raises(ValueError):
        main(-1)


def test_exit_at_once_skips_the_interpreters_shutdown():
    code = (
        "import atexit\n"
        "from vsr_jax import cli\n"
        "from vsr_jax.errors import UserError\n"
        "atexit.register(lambda: print('shutdown ran', flush=True))\n"
        "print('before', end='')\n"  # unflushed stdout still comes out
        "@cli.exit_path('prog', exit_at_once=lambda e: 'disk' in str(e))\n"
        "def main(message):\n"
        "    raise UserError(message)\n"
        "import sys\n"
        "main(sys.argv[1])\n"
    )
    for message, at_once in (("the disk is full", True), ("bad flag", False)):
        proc = subprocess.run([sys.executable, "-c", code, message], capture_output=True, text=True, cwd=ROOT)
        assert proc.returncode == 1 and proc.stderr == f"prog: error: {message}\n", proc.stderr
        assert proc.stdout.startswith("before") and ("shutdown ran" in proc.stdout) != at_once


def test_call_exits_with_mains_status(capsys):
    for returned, code in ((None, 0), (0, 0), (2, 2)):
        with pytest.raises(SystemExit) as e:
            cli.call(lambda argv, r=returned: r, [], prog="prog")
        assert e.value.code == code
