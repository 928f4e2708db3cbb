"""vsr-upscale on the command line: what works (an image model on a video, frame folders
of gray / alpha / 16-bit images, odd and tiny sizes, batch mode) and the bad-input table
(one error line, exit status 1, nothing at the output path)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests import upscale_helpers as uh
from tests.conftest import ROOT


def upscale(*args, timeout=300):
    return subprocess.run(
        [sys.executable, "-m", "vsr_jax.upscale", "--noprogress", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )


def error_lines(proc):
    """stderr lines that are not absl log lines (I/W/E + date) nor the model line."""
    return [
        ln
        for ln in proc.stderr.splitlines()
        if ln.strip() and not re.match(r"[IWE]\d{4} ", ln) and not ln.startswith("model: ")
    ]


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    uh.write_checkpoint(root / "srcnn", "srcnn")
    uh.write_checkpoint(root / "srcnn3", "srcnn", scale=3)
    uh.write_video(root / "clip.mp4", uh.moving_frames(6, 16, 20), audio=True)
    return root


def test_image_model_on_a_video_and_batch_mode(files, tmp_path):
    proc = upscale(files / "clip.mp4", "-o", tmp_path / "out.mkv", f"--workdir={files / 'srcnn'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    frames, _ = uh.read_video(tmp_path / "out.mkv")
    assert frames.shape == (6, 32, 40, 3) and len(uh.audio_packets(tmp_path / "out.mkv")) > 10
    assert "wrote" in proc.stderr and "frames/s" in proc.stderr
    assert re.search(r"^model: srcnn x2 from .* step 1; frames mode on 1 cpu device$", proc.stderr, re.M), proc.stderr
    assert not re.search(r"read[ _]only", proc.stderr, re.IGNORECASE), proc.stderr  # Orbax's notices: -v 1 only

    videos = tmp_path / "videos"
    videos.mkdir()
    shutil.copy(files / "clip.mp4", videos / "a.mp4")
    uh.write_video(videos / "b.mov", uh.moving_frames(3, 8, 8))
    (videos / "notes.txt").write_text("not a video")
    proc = upscale(videos, "-o", tmp_path / "up", f"--workdir={files / 'srcnn'}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(os.listdir(tmp_path / "up")) == ["a.mp4", "b.mov"]
    assert uh.read_video(tmp_path / "up" / "b.mov")[0].shape == (3, 16, 16, 3)
    proc = upscale(videos, "-o", tmp_path / "up", f"--workdir={files / 'srcnn'}")  # again: nothing done this time
    assert proc.returncode == 1 and proc.stderr.count("exists, skipped") == 2
    assert "2 of 2 inputs not upscaled (2 skipped, 0 failed)" in proc.stderr


def test_frame_folders_of_gray_alpha_and_16_bit_images(files, tmp_path):
    import cv2

    frames = uh.moving_frames(4, 10, 12)
    cases = {
        "gray": [f[..., 0] for f in frames],
        "alpha": [np.concatenate([f[..., ::-1], np.full(f.shape[:2] + (1,), 128, np.uint8)], -1) for f in frames],
        "deep": [f[..., ::-1].astype(np.uint16) * 257 for f in frames],
    }
    for name, images in cases.items():
        folder = tmp_path / name
        folder.mkdir()
        for i, image in enumerate(images):
            cv2.imwrite(str(folder / f"f{i + 1}.png"), image)
        proc = upscale(folder, "-o", tmp_path / f"{name}_out", f"--workdir={files / 'srcnn'}")
        assert proc.returncode == 0, (name, proc.stderr[-2000:])
        out = sorted(os.listdir(tmp_path / f"{name}_out"))
        assert out == [".vsr-upscale"] + [f"frame_{i:06d}.png" for i in range(1, 5)], name  # its marker, its frames
        image = cv2.imread(str(tmp_path / f"{name}_out" / out[1]), cv2.IMREAD_UNCHANGED)
        assert image.shape == (20, 24, 3) and image.dtype == (np.uint16 if name == "deep" else np.uint8), name
    proc = upscale(tmp_path / "deep", "-o", tmp_path / "deep.mp4", f"--workdir={files / 'srcnn'}", "--fps=30")
    assert proc.returncode == 0, proc.stderr[-2000:]
    frames, times = uh.read_video(tmp_path / "deep.mp4")
    assert frames.shape == (4, 20, 24, 3) and float(times[1] - times[0]) == pytest.approx(1 / 30)


def test_odd_and_tiny_sizes(files, tmp_path):
    uh.write_video(tmp_path / "odd.mp4", uh.moving_frames(3, 7, 9), pix_fmt="yuv444p")
    proc = upscale(
        tmp_path / "odd.mp4", "-o", tmp_path / "odd_x3.mp4", f"--workdir={files / 'srcnn3'}", "--pix_fmt=yuv420p"
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "padded to 28×22" in proc.stderr  # 4:2:0 needs even sizes; said, not hidden
    assert uh.read_video(tmp_path / "odd_x3.mp4")[0].shape == (3, 22, 28, 3)
    proc = upscale(tmp_path / "odd.mp4", "-o", tmp_path / "odd_444.mp4", f"--workdir={files / 'srcnn3'}")
    assert proc.returncode == 0 and uh.read_video(tmp_path / "odd_444.mp4")[0].shape == (3, 21, 27, 3)
    uh.write_video(tmp_path / "tiny.mp4", uh.moving_frames(3, 2, 2), pix_fmt="yuv444p")
    proc = upscale(tmp_path / "tiny.mp4", "-o", tmp_path / "tiny_out.mp4", f"--workdir={files / 'srcnn'}")
    assert proc.returncode == 0 and uh.read_video(tmp_path / "tiny_out.mp4")[0].shape == (3, 4, 4, 3)


def _bad_inputs(files, tmp):
    """(name, input, extra args, output, expected words in the error line)."""
    text = tmp / "notes.mp4"
    text.write_text("this is not a video\n" * 100)
    empty = tmp / "empty.mp4"
    empty.write_bytes(b"")
    data = (files / "clip.mp4").read_bytes()
    cut = tmp / "cut.mp4"  # moov at the end: the index is gone
    cut.write_bytes(data[: len(data) // 2])
    fast = tmp / "fast.mp4"  # moov in front (faststart): the header promises more frames than the file holds
    uh.write_video(fast, uh.moving_frames(40, 16, 20), faststart=True)
    fast_cut = tmp / "fast_cut.mp4"
    fast_cut.write_bytes(fast.read_bytes()[: int(fast.stat().st_size * 0.6)])
    audio_only = tmp / "audio_only.m4a"
    uh.write_audio(audio_only)
    empty_dir = tmp / "empty_dir"
    empty_dir.mkdir()
    corrupt = tmp / "corrupt_run"
    shutil.copytree(files / "srcnn", corrupt)
    for dirpath, _, names in os.walk(corrupt / "checkpoints"):
        for n in names:
            if "state" in dirpath and not n.startswith("_"):
                p = os.path.join(dirpath, n)
                with open(p, "r+b") as f:
                    f.truncate(max(0, os.path.getsize(p) // 3))
    clip, srcnn = files / "clip.mp4", f"--workdir={files / 'srcnn'}"
    return [
        ("missing file", tmp / "nope.mp4", [srcnn], tmp / "o1.mp4", "not found"),
        ("not a video", text, [srcnn], tmp / "o2.mp4", "is it a video"),
        ("empty file", empty, [srcnn], tmp / "o3.mp4", "empty"),
        ("truncated, index lost", cut, [srcnn], tmp / "o4.mp4", "cannot read"),
        ("truncated, faststart", fast_cut, [srcnn], tmp / "o5.mp4", "truncated"),
        ("zero video frames", audio_only, [srcnn], tmp / "o6.mp4", "no video stream"),
        ("empty folder", empty_dir, [srcnn], tmp / "o7.mp4", "neither frames"),
        ("output == input", clip, [srcnn], clip, "is the input"),
        ("unwritable output folder", clip, [srcnn], "/proc/o9.mp4", "cannot write"),
        ("missing output folder", clip, [srcnn], tmp / "no" / "o10.mp4", "does not exist"),
        ("no checkpoint", clip, [f"--workdir={tmp}"], tmp / "o11.mp4", "no checkpoints"),
        ("corrupt checkpoint", clip, [f"--workdir={corrupt}"], tmp / "o12.mp4", "checkpoint"),
        ("unknown codec", clip, [srcnn, "--codec=libnope"], tmp / "o13.mp4", "libnope"),
        ("more devices than the host has", clip, [srcnn, "--devices=3"], tmp / "o14.mp4", "--devices=3"),
    ]


def test_bad_input_table(files, tmp_path):
    before = None
    for name, source, args, output, words in _bad_inputs(files, tmp_path):
        before = set(os.listdir(tmp_path))
        proc = upscale(source, "-o", output, *args)
        lines = error_lines(proc)
        assert proc.returncode == 1, (name, proc.returncode, proc.stderr[-1500:])
        assert len(lines) == 1 and lines[0].startswith("vsr-upscale: error:"), (name, proc.stderr[-1500:])
        assert words in lines[0], (name, lines[0])
        if str(output) != str(source):
            assert not os.path.exists(output), name
        assert set(os.listdir(tmp_path)) == before, (name, set(os.listdir(tmp_path)) ^ before)  # nothing left behind


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_killed_run_resumes_to_the_same_video(files, tmp_path, sig):
    uh.write_checkpoint(tmp_path / "rgan", "recurrent_gan")
    uh.write_video(tmp_path / "long.mp4", uh.moving_frames(40, 16, 20), audio=True)
    flags = (f"--workdir={tmp_path / 'rgan'}", "--chunk=4", "--segment_frames=8", "--queue=2")
    flags += ("--crf=0", "--pix_fmt=yuv444p")  # lossless: x264's bytes vary between runs (see test_upscale_job)
    whole = upscale(tmp_path / "long.mp4", "-o", tmp_path / "whole.mp4", *flags)
    assert whole.returncode == 0, whole.stderr[-2000:]
    out = tmp_path / "out.mp4"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vsr_jax.upscale", "--noprogress", str(tmp_path / "long.mp4"), "-o", str(out), *flags],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    progress = tmp_path / ".out.mp4.vsr-upscale" / "progress.json"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if progress.exists() and json.loads(progress.read_text())["segments"] >= 1:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "finished before it could be killed"
    proc.send_signal(sig)
    stderr = proc.communicate(timeout=120)[1]
    assert proc.returncode != 0 and not out.exists()
    if sig == signal.SIGTERM:
        assert "run the same command again to resume" in stderr
    again = upscale(tmp_path / "long.mp4", "-o", out, *flags)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Resuming" in again.stderr
    (a, ta), (b, tb) = uh.read_video(tmp_path / "whole.mp4"), uh.read_video(out)
    np.testing.assert_array_equal(a, b)
    assert ta == tb and uh.audio_packets(out) == uh.audio_packets(tmp_path / "long.mp4")
