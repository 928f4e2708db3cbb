"""vsr-upscale never destroys or clobbers what it did not make: every refusal is one line,
exit status 1, and every file that was there before is still there, byte for byte."""

import hashlib
import os
import re
import subprocess
import sys

import cv2
import pytest

from tests import upscale_helpers as uh
from tests.conftest import ROOT
from vsr_jax.errors import UserError
from vsr_jax.upscale import paths


def upscale(*args, cwd=ROOT, env=None, timeout=300):
    env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    cmd = [sys.executable, "-m", "vsr_jax.upscale", "--noprogress", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)


def error_lines(proc):
    return [ln for ln in proc.stderr.splitlines() if ln.strip() and not re.match(r"[IWE]\d{4} ", ln)]


def snapshot(root) -> dict:
    """Every path under `root` (links not followed) with its content's hash (files) or target (links)."""
    tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            if os.path.islink(p):
                tree[p] = "-> " + os.readlink(p)
            elif os.path.isfile(p):
                tree[p] = hashlib.sha256(open(p, "rb").read()).hexdigest()
            else:
                tree[p] = "dir"
    return tree


def write_frames(folder, n=3, ours=False):
    folder.mkdir(parents=True, exist_ok=True)
    for i, f in enumerate(uh.moving_frames(n, 8, 10)):
        cv2.imwrite(str(folder / (f"frame_{i + 1:06d}.png" if ours else f"f{i}.png")), f)
    if ours:
        paths.write_marker(str(folder), n)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("safety")
    uh.write_checkpoint(root / "srcnn", "srcnn")
    return root / "srcnn"


def assert_refused(proc, words):
    lines = error_lines(proc)
    assert proc.returncode == 1, proc.stderr[-1500:]
    assert len(lines) == 1 and lines[0].startswith("vsr-upscale: error:"), proc.stderr[-1500:]
    assert words in lines[0], lines[0]


def test_the_reported_data_loss_is_refused(run_dir, tmp_path):
    """`vsr-upscale frames -o . --overwrite` in a folder of the user's deleted everything in it."""
    home = tmp_path / "home"
    write_frames(home / "frames")
    uh.write_video(home / "holiday.mp4", uh.moving_frames(3, 8, 10))
    (home / "notes.txt").write_text("my notes\n")
    before = snapshot(tmp_path)
    proc = upscale("frames", "-o", ".", "--overwrite", f"--workdir={run_dir}", cwd=home)
    assert_refused(proc, "contains the input")
    proc = upscale(home / "holiday.mp4", "-o", ".", "--overwrite", f"--workdir={run_dir}", cwd=home)
    assert_refused(proc, "contains the input")
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize(
    "case",
    ["user folder", "ours plus a file", "ours with a subfolder", "cwd", "home", "parent of cwd", "link to ours",
     "link to a video", "dangling link", "text named .mp4", "folder named .mp4", "file as frames folder",
     "batch output inside the input"],
)  # fmt: skip
def test_overwrite_refuses_what_vsr_upscale_did_not_make(run_dir, tmp_path, case):
    clip = tmp_path / "in" / "clip.mp4"
    clip.parent.mkdir()
    uh.write_video(clip, uh.moving_frames(3, 8, 10))
    place = tmp_path / "place"
    place.mkdir()
    cwd, env, out, source = tmp_path, None, place / "out", clip
    if case == "user folder":
        write_frames(out)  # frames, but no marker: a folder of the user's
    elif case == "ours plus a file":
        write_frames(out, ours=True)
        (out / "keep.txt").write_text("mine")
    elif case == "ours with a subfolder":
        write_frames(out, ours=True)
        write_frames(out / "more")
    elif case == "cwd":
        write_frames(place, ours=True)  # even a folder of its own frames: not the current folder
        cwd, out = place, "."
    elif case == "home":
        write_frames(place, ours=True)
        env, out = {"HOME": str(place)}, place
    elif case == "parent of cwd":
        (place / "sub").mkdir()
        cwd, out = place / "sub", place
    elif case == "link to ours":
        write_frames(place / "real", ours=True)
        out.symlink_to(place / "real")
    elif case == "link to a video":
        uh.write_video(place / "real.mp4", uh.moving_frames(2, 8, 10))
        out = place / "out.mp4"
        out.symlink_to(place / "real.mp4")
    elif case == "dangling link":
        out = place / "out.mp4"
        out.symlink_to(place / "not_yet.mp4")
    elif case == "text named .mp4":
        out = place / "out.mp4"
        out.write_text("a script that happens to end in .mp4\n")
    elif case == "folder named .mp4":
        out = place / "out.mp4"
        write_frames(out)
    elif case == "file as frames folder":
        out.write_text("not a folder")
    elif case == "batch output inside the input":
        uh.write_video(clip.parent / "other.mp4", uh.moving_frames(2, 8, 10))
        source, out = clip.parent, clip.parent / "up"
    before = snapshot(tmp_path)
    proc = upscale(source, "-o", out, "--overwrite", f"--workdir={run_dir}", cwd=cwd, env=env)
    words = {
        "cwd": "current folder",
        "home": "home folder",
        "parent of cwd": "current folder",
        "user folder": "did not write",
        "ours plus a file": "keep.txt",
        "ours with a subfolder": "more",
        "text named .mp4": "not a video",
        "folder named .mp4": "not a video",
        "file as frames folder": "not a folder",
        "batch output inside the input": "inside the input folder",
    }.get(case, "symbolic link")
    assert_refused(proc, words)
    assert snapshot(tmp_path) == before


def test_overwrite_replaces_its_own_outputs_and_an_empty_folder_is_free(run_dir, tmp_path):
    clip = tmp_path / "clip.mp4"
    uh.write_video(clip, uh.moving_frames(4, 8, 10))
    out = tmp_path / "frames_out"
    out.mkdir()  # empty: nothing to lose, no --overwrite needed
    proc = upscale(clip, "-o", out, f"--workdir={run_dir}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert sorted(os.listdir(out)) == [paths.MARKER] + [f"frame_{i:06d}.png" for i in range(1, 5)]
    proc = upscale(clip, "-o", out, f"--workdir={run_dir}")
    assert_refused(proc, "pass --overwrite")
    uh.write_video(tmp_path / "video.mp4", uh.moving_frames(2, 8, 10))  # a video of the user's at the output path
    for target in (out, tmp_path / "video.mp4"):
        stamp = os.stat(target).st_ino
        proc = upscale(clip, "-o", target, "--overwrite", f"--workdir={run_dir}")
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert os.stat(target).st_ino != stamp  # a new folder / file took its place
    assert uh.read_video(tmp_path / "video.mp4")[0].shape == (4, 16, 20, 3)
    assert len(os.listdir(out)) == 5
    assert sorted(os.listdir(tmp_path)) == ["clip.mp4", "frames_out", "video.mp4"]  # no work or temporary files


def test_batch_names_shared_stems_apart_and_a_skip_is_not_success(run_dir, tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    uh.write_video(videos / "a.mp4", uh.moving_frames(3, 8, 10))
    uh.write_video(videos / "a.mkv", uh.moving_frames(2, 8, 10))
    uh.write_video(videos / "b.mp4", uh.moving_frames(2, 8, 10))
    up = tmp_path / "up"
    up.mkdir()
    (up / "b.mp4").write_text("already here, not ours")
    proc = upscale(videos, "-o", up, "--ext=mp4", f"--workdir={run_dir}")  # a.mp4, a.mkv: both a.mp4
    assert proc.returncode == 1, proc.stderr[-2000:]  # not everything was done
    assert "warning: " in proc.stderr and "b.mp4 exists, skipped" in proc.stderr
    assert "1 of 3 inputs not upscaled (1 skipped, 0 failed)" in proc.stderr
    assert sorted(os.listdir(up)) == ["a.mkv.mp4", "a.mp4.mp4", "b.mp4"]
    assert uh.read_video(up / "a.mp4.mp4")[0].shape[0] == 3 and uh.read_video(up / "a.mkv.mp4")[0].shape[0] == 2
    assert (up / "b.mp4").read_text() == "already here, not ours"
    proc = upscale(videos, "-o", up, "--ext=mp4", "--overwrite", f"--workdir={run_dir}")  # b.mp4: no video
    assert_refused(proc, "not a video")
    assert (up / "b.mp4").read_text() == "already here, not ours"


def test_batch_refuses_outputs_that_would_collide_before_anything_runs(run_dir, tmp_path):
    for folder in ("day1", "day2"):
        (tmp_path / folder).mkdir()
        uh.write_video(tmp_path / folder / "clip.mp4", uh.moving_frames(2, 8, 10))
    before = snapshot(tmp_path)
    proc = upscale(tmp_path / "day1", tmp_path / "day2", "-o", tmp_path / "up", f"--workdir={run_dir}")
    assert_refused(proc, "would both be written to")
    assert snapshot(tmp_path) == before  # not even the output folder


def test_batch_output_names():
    ext = lambda v: ".mp4"  # noqa: E731
    pairs = paths.batch_outputs(["v/a.mp4", "v/a.AVI", "v/b.mov", "v/c"], "up", ext)
    assert [o for _, o in pairs] == ["up/a.mp4.mp4", "up/a.AVI.mp4", "up/b.mp4", "up/c.mp4"]
    with pytest.raises(UserError, match="x/a.mp4 and y/a.mp4 would both be written to up/a.mp4.mp4"):
        paths.batch_outputs(["x/a.mp4", "y/a.mp4"], "up", ext)
    with pytest.raises(UserError, match="would both be written"):
        paths.batch_outputs(["x/A.mp4", "y/a.mkv", "y/a.mp4"], "up", ext)  # A.mp4.mp4 vs a.mp4.mp4


def test_planted_work_folders_are_not_trusted(run_dir, tmp_path):
    clip = tmp_path / "clip.mp4"
    uh.write_video(clip, uh.moving_frames(3, 8, 10))
    work = tmp_path / ".out.mp4.vsr-upscale"
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "job.json").write_text("{}")
    (victim / "precious.txt").write_text("do not touch")
    plants = {
        "link": lambda: work.symlink_to(victim),
        "foreign file": lambda: (work.mkdir(), (work / "precious.txt").write_text("mine")),
        "writable by others": lambda: (work.mkdir(), os.chmod(work, 0o777)),
        "other user": lambda: (work.mkdir(0o700), os.chown(work, 12345, 12345)),
        "a file": lambda: work.write_text("not a folder"),
    }
    for name, plant in plants.items():
        if name == "other user" and os.getuid() != 0:
            continue  # chown needs root
        plant()
        before = snapshot(tmp_path)
        with pytest.raises(UserError, match="was not made by vsr-upscale for you"):
            paths.check_work_dir(str(work))
        if name == "link":  # and through the whole program: one line, nothing touched
            proc = upscale(clip, "-o", tmp_path / "out.mp4", f"--workdir={run_dir}")
            assert_refused(proc, "not made by vsr-upscale for you (it is a symbolic link)")
        assert snapshot(tmp_path) == before, name
        if work.is_symlink() or work.is_file():
            work.unlink()
        else:
            for p in work.iterdir():
                p.unlink()
            work.rmdir()
    work.mkdir(0o700)  # what vsr-upscale itself leaves: accepted
    for n in ("job.json", "job.json.tmp", "progress.json", "seg_00000.mp4", "seg_123456.mp4.part", "state_00001.npz",
              "state_00002.npz.tmp.npz", "joined.mkv"):  # fmt: skip
        (work / n).write_text("")
    (work / "frames").mkdir()
    paths.check_work_dir(str(work))
    paths.discard_work_dir(str(work))
    assert not work.exists() and (victim / "precious.txt").read_text() == "do not touch"


def test_output_checks_in_process(tmp_path):
    clip = tmp_path / "clip.mp4"
    uh.write_video(clip, uh.moving_frames(2, 8, 10))
    paths.check_output(str(clip), str(tmp_path / "new.mp4"), False, True)  # a new file is fine
    with pytest.raises(UserError, match="is the input"):
        paths.check_output(str(clip), str(clip), True, True)
    os.link(clip, tmp_path / "hard.mp4")  # the same file under another name
    with pytest.raises(UserError, match="is the input"):
        paths.check_output(str(clip), str(tmp_path / "hard.mp4"), True, True)
    with pytest.raises(UserError, match="home folder"):
        paths.check_output(str(clip), os.path.expanduser("~"), True, False)
    with pytest.raises(UserError, match="contains the input"):
        paths.check_output(str(clip), "/", True, False)
