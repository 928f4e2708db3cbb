"""The `vsr-train` command line: bad input gives one line on stderr and a non-zero exit."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT


def run_main(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "vsr_jax.main", *args], capture_output=True, text=True, cwd=ROOT, timeout=timeout
    )


def error_lines(proc):
    return [ln for ln in proc.stderr.splitlines() if ln.strip()]


@pytest.mark.parametrize(
    "args, message",
    [
        (["--config=configs/nope.py"], "nope.py"),
        (["--config=configs/unet.py", "--config.totl_steps=5"], "totl_steps"),
        (["--config=configs/unet.py", "--config.total_steps=many"], "total_steps"),
        (
            ["--config=configs/srresnet.py", "--config.data.scale=8"],
            "data.scale=8 is not supported by model 'srresnet'",
        ),
        (["--config=configs/unet.py", "--config.data.name=vimeo90k", "--config.data.manual_dir=/nope"], "vimeo"),
        (["--config=configs/unet.py", "--config.data.name=video_folder", "--config.data.path=/nope"], "/nope"),
    ],
)
def test_bad_config_is_one_line_and_nonzero(tmp_path, args, message):
    proc = run_main(*args, f"--workdir={tmp_path / 'w'}")
    assert proc.returncode != 0
    lines = error_lines(proc)
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("vsr-train: error:") and message in lines[0]
    assert not (tmp_path / "w" / "checkpoints").exists()


def test_unwritable_workdir_is_one_line_and_nonzero(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = run_main("--config=configs/unet.py", f"--workdir={blocker / 'run'}")
    assert proc.returncode != 0
    lines = error_lines(proc)
    assert len(lines) == 1, proc.stderr
    assert "cannot write to workdir" in lines[0] and "--workdir" in lines[0]
