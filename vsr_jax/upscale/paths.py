"""What vsr-upscale may write, replace and trust: it never deletes or overwrites anything it
did not make itself.

- An output that exists is replaced only with `--overwrite`, and only if it is what
  vsr-upscale writes: a video file (a regular file in which PyAV finds a video stream), or
  a folder of frames that holds vsr-upscale's marker file and nothing but its frames. A
  symbolic link, the input (or a folder holding it), the current folder, the home folder
  or one of their parents is refused whatever the flags say. An empty folder is free to
  use.
- The work folder (``.NAME.vsr-upscale/`` beside the output) is created private (0700);
  one found there is used, or discarded, only if it is a real folder of this user's, not
  writable by others, that holds nothing but vsr-upscale's files. Everything is assembled
  inside it and renamed into place, so no temporary file ever sits beside the output.
- Batch mode names outputs from the inputs' names; two inputs that would share an output
  name (``a.mp4``, ``a.avi``) keep their extension in it (``a.mp4.mp4``, ``a.avi.mp4``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import tempfile

from vsr_jax.errors import UserError

MARKER = ".vsr-upscale"  # written into every frames folder vsr-upscale makes
FRAME_NAME = re.compile(r"frame_\d{6,}\.png")
WORK_SUFFIX = ".vsr-upscale"
# what a work folder may hold: the job's signature, progress, segments, recurrent states, frames,
# and the temporary files `fileio.atomic_write` writes them under (older versions: .tmp, .tmp.npz)
_WORK_ENTRY = re.compile(
    r"((job|progress)\.json(\.tmp)?|seg_\d{5,}\.mp4(\.part)?|state_\d{5,}\.npz(\.tmp\.npz)?|frames|replaced|joined\..+"
    r"|\.((job|progress)\.json|state_\d{5,}\.npz)\.\w{8}\.tmp)"
)


def _is_video(path: str) -> bool:
    import av

    try:
        with av.open(path) as c:
            return len(c.streams.video) > 0
    except (av.FFmpegError, OSError, ValueError):
        return False


def within(path: str, folder: str) -> bool:
    """True when `path` is `folder` or lies inside it (both real paths)."""
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def check_frames_folder(folder: str) -> None:
    """Refuses unless `folder` is a frames folder vsr-upscale wrote: its marker and frames only."""
    names = os.listdir(folder)
    if MARKER not in names:
        raise UserError(
            f"{folder} is a folder vsr-upscale did not write (no {MARKER} marker); "
            "it replaces only its own frame folders: choose a new output path"
        )
    for name in names:
        entry = os.path.join(folder, name)
        if name != MARKER and not FRAME_NAME.fullmatch(name) or not stat.S_ISREG(os.lstat(entry).st_mode):
            raise UserError(
                f"{folder} holds {name}, which vsr-upscale did not write; move it out or choose a new output path"
            )


def check_output(source: str, output: str, overwrite: bool, to_video: bool) -> None:
    """Refuses an output path that would destroy or clobber anything vsr-upscale did not make,
    and a work folder for it that vsr-upscale cannot trust."""
    out = os.path.abspath(output)
    if os.path.islink(out):
        raise UserError(f"the output {output} is a symbolic link; vsr-upscale does not write through links")
    real_src, real_out = os.path.realpath(source), os.path.realpath(out)
    if real_src == real_out or (os.path.exists(out) and os.path.samefile(source, out)):
        raise UserError(f"the output {output} is the input; choose another output path")
    if os.path.isdir(real_src) and within(real_out, real_src):
        raise UserError(f"the output {output} is inside the input folder {source}; choose a path outside it")
    if within(real_src, real_out):
        raise UserError(f"the output {output} contains the input {source}; choose another output path")
    for name, folder in (("current", os.getcwd()), ("home", os.path.expanduser("~"))):
        if within(os.path.realpath(folder), real_out):
            raise UserError(f"the output {output} is the {name} folder or holds it; choose a new output path")
    if os.path.lexists(work_dir(out)):
        check_work_dir(work_dir(out))
    if not os.path.lexists(out):
        return
    if to_video:
        if not os.path.isfile(out) or not _is_video(out):
            raise UserError(
                f"{output} exists and is not a video; vsr-upscale replaces only videos and its own frame folders"
            )
    elif not os.path.isdir(out):
        raise UserError(f"{output} exists and is not a folder; choose a new folder for the frames")
    elif not os.listdir(out):
        return  # an empty folder: nothing to lose
    else:
        check_frames_folder(out)
    if not overwrite:
        raise UserError(f"{output} exists; pass --overwrite to replace it")


def check_paths(source: str, output: str, overwrite: bool, to_video: bool) -> None:
    """`check_output`, then that the output's folder exists and takes a file."""
    check_output(source, output, overwrite, to_video)
    check_writable(os.path.dirname(os.path.abspath(output)))


def check_writable(parent: str) -> None:
    """Refuses a folder that does not exist or takes no file."""
    if not os.path.isdir(parent):
        raise UserError(f"the output folder {parent} does not exist; create it first")
    try:  # a real write: os.access says yes to root even on read-only file systems
        tempfile.TemporaryFile(dir=parent).close()
    except OSError as e:
        raise UserError(f"cannot write to {parent} ({e.strerror}); choose an output folder you can write to") from None


def work_dir(output: str) -> str:
    out = os.path.abspath(output)
    return os.path.join(os.path.dirname(os.path.realpath(out)), f".{os.path.basename(out)}{WORK_SUFFIX}")


def check_work_dir(work: str) -> None:
    """Refuses a work folder vsr-upscale cannot trust: a link, another user's, writable by
    others, or holding files vsr-upscale does not write."""
    st = os.lstat(work)
    why = None
    if not stat.S_ISDIR(st.st_mode):
        why = "it is a symbolic link" if stat.S_ISLNK(st.st_mode) else "it is not a folder"
    elif st.st_uid != os.getuid():
        why = f"it belongs to user id {st.st_uid}"
    elif st.st_mode & 0o022:
        why = "others can write to it"
    else:
        strange = sorted(n for n in os.listdir(work) if not _WORK_ENTRY.fullmatch(n))
        if strange:
            why = f"it holds {strange[0]}, which vsr-upscale does not write"
    if why:
        raise UserError(f"{work} was not made by vsr-upscale for you ({why}); move it away and run again")


def make_work_dir(work: str) -> None:
    try:
        os.mkdir(work, 0o700)
    except FileExistsError:
        raise UserError(f"{work} appeared while starting; is another vsr-upscale writing this output?") from None


def discard_work_dir(work: str) -> None:
    """Removes a work folder that `check_work_dir` accepted (rmtree never follows links inside)."""
    check_work_dir(work)
    shutil.rmtree(work)


def write_marker(folder: str, frames: int) -> None:
    with open(os.path.join(folder, MARKER), "w") as f:
        json.dump({"written_by": "vsr-upscale", "frames": frames}, f)


def batch_outputs(videos: list[str], folder: str, ext_of) -> list[tuple[str, str]]:
    """(input, output) pairs of a batch into `folder`; `ext_of(input)` is the output's
    extension. Inputs that would share an output keep their own extension in its name;
    any output name still shared (the same name in two input folders) is refused."""

    def name(video: str, keep_ext: bool) -> str:
        base = os.path.basename(video.rstrip(os.sep))
        stem = base if keep_ext else os.path.splitext(base)[0]
        return stem + ext_of(video)

    def clashes(names: list[str]) -> set[str]:
        seen: dict[str, int] = {}
        for n in names:
            seen[n.lower()] = seen.get(n.lower(), 0) + 1  # case-insensitive file systems too
        return {n for n, c in seen.items() if c > 1}

    names = [name(v, False) for v in videos]
    shared = clashes(names)
    names = [name(v, True) if n.lower() in shared else n for v, n in zip(videos, names, strict=True)]
    shared = clashes(names)
    if shared:
        same = [(v, n) for v, n in zip(videos, names, strict=True) if n.lower() in shared]
        raise UserError(
            f"{same[0][0]} and {same[1][0]} would both be written to {os.path.join(folder, same[0][1])}; "
            "rename one or upscale them in separate runs"
        )
    return [(v, os.path.join(folder, n)) for v, n in zip(videos, names, strict=True)]
