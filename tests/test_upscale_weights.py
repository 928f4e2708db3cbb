"""vsr-upscale with a published weight file (--weights) or a registry name (--model), with no
run folder: the same frames as through an imported run folder, one-line errors for a file of
the wrong sizes, an unreachable download, and two model sources at once."""

import dataclasses
import os
import pathlib
import shutil
import socket

import cv2
import pytest

from tests import upscale_helpers as uh
from tests.test_upscale_cli import error_lines, upscale
from vsr_jax.errors import UserError

PTH = pathlib.Path(__file__).parent / "data" / "pth" / "msrresnet_x4.pth"  # a narrow BasicSR MSRResNet x4


def _frames(folder):
    names = sorted(n for n in os.listdir(folder) if n.endswith(".png"))
    return names, [cv2.imread(str(folder / n), cv2.IMREAD_UNCHANGED) for n in names]


def test_weights_upscales_like_the_imported_run_folder(tmp_path):
    from vsr_jax.pretrained import importer

    uh.write_video(tmp_path / "clip.mp4", uh.moving_frames(3, 12, 16))
    importer.import_weights(str(PTH), str(tmp_path / "run"))
    a = upscale(tmp_path / "clip.mp4", "-o", tmp_path / "a", f"--weights={PTH}")
    assert a.returncode == 0, a.stderr[-2000:]
    assert "model: msrresnet x4 from" in a.stderr
    b = upscale(tmp_path / "clip.mp4", "-o", tmp_path / "b", f"--workdir={tmp_path / 'run'}")
    assert b.returncode == 0, b.stderr[-2000:]
    names_a, frames_a = _frames(tmp_path / "a")
    names_b, frames_b = _frames(tmp_path / "b")
    assert names_a == names_b and len(names_a) == 3
    for fa, fb in zip(frames_a, frames_b, strict=True):
        assert fa.shape == (48, 64, 3)
        assert (fa == fb).all()


def _one_line(e) -> str:
    msg = str(e.value)
    assert "\n" not in msg, msg
    return msg


@pytest.fixture
def weights_dir(tmp_path, monkeypatch):
    from vsr_jax.pretrained import download

    d = tmp_path / "weights"
    d.mkdir()
    monkeypatch.setenv(download.ENV_VAR, str(d))
    return d


def test_model_with_a_wrong_file_in_the_cache_is_one_line(weights_dir, capsys):
    from vsr_jax.pretrained import registry
    from vsr_jax.upscale import sources as cli

    entry = registry.get("RealESRGAN_x4plus_anime_6B")
    shutil.copy(PTH, weights_dir / entry.filename)  # an MSRResNet where an RRDBNet belongs
    with pytest.raises(UserError) as e:
        cli.registry_model(entry, bf16=False, progress=False)
    assert entry.filename in _one_line(e)
    assert "not hash-verified" in capsys.readouterr().err


def test_model_offline_says_where_to_put_the_file(weights_dir):
    from vsr_jax.pretrained import registry
    from vsr_jax.upscale import sources as cli

    with socket.socket() as s:  # a port nothing listens on: no network is reached
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    entry = dataclasses.replace(
        registry.get("realesr-animevideov3"), url=f"http://127.0.0.1:{port}/realesr-animevideov3.pth"
    )
    with pytest.raises(UserError) as e:
        cli.registry_model(entry, bf16=False, progress=False)
    msg = _one_line(e)
    assert msg.startswith(f"cannot download {entry.url}")
    assert str(weights_dir / "realesr-animevideov3.pth") in msg
    assert os.listdir(weights_dir) == []


def test_two_model_sources_are_one_line(tmp_path):
    uh.write_video(tmp_path / "clip.mp4", uh.moving_frames(2, 8, 8))
    proc = upscale(
        tmp_path / "clip.mp4", "-o", tmp_path / "out.mp4", f"--weights={PTH}", "--model=realesr-animevideov3"
    )
    assert proc.returncode == 1
    assert error_lines(proc) == [
        "vsr-upscale: error: give one of --workdir, --weights, --model, not --weights and --model"
    ]
    assert not os.path.exists(tmp_path / "out.mp4")


def test_two_model_sources_in_process():
    from vsr_jax.upscale import sources as cli

    with pytest.raises(UserError) as e:
        cli.choose_model("run", None, None, "realesr-animevideov3", False)
    assert _one_line(e) == "give one of --workdir, --weights, --model, not --workdir and --model"
    with pytest.raises(UserError) as e:
        cli.choose_model(None, None, None, None, False)
    assert "is required" in _one_line(e)
