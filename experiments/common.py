"""What the experiment scripts share.

Every script trains its entries with the training binary (`python -m vsr_jax.main`, one
subprocess per run, so a run is exactly what a user's command line gives and an
interrupted run resumes from its last checkpoint), scores the finished runs with the
metrics binary in batch mode (`python -m vsr_jax.evaluate --workdir=A --workdir=B ...`),
prints the table, writes it to WORKDIR/<name>.md and rewrites it in the README between
`<!-- name -->` and `<!-- /name -->`.

Shared flags: `--workdir` (root of the runs), `--steps` (override every entry's
training steps), `--full` (the recipes' real presets on Vimeo-90K from `--vimeo_dir`;
tables go to the `<name>_full` README block when it exists), `--readme` (the README to
rewrite; `--readme=` only prints).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import time

from absl import flags

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from vsr_jax import fileio  # noqa: E402 (found through ROOT)

WORKDIR = flags.DEFINE_string("workdir", None, "Root directory for the runs (one folder per entry).", required=True)
STEPS = flags.DEFINE_integer("steps", 0, "Override every entry's training steps (0: the preset's).")
FULL = flags.DEFINE_bool(
    "full", False, "Train the recipes' full presets on Vimeo-90K (--vimeo_dir) instead of the short sample-clip ones."
)
VIMEO_DIR = flags.DEFINE_string(
    "vimeo_dir", "~/data/vimeo", "--full: the folder holding vimeo_septuplet.zip or its unpacked vimeo_septuplet/."
)
EVAL_CLIPS = flags.DEFINE_integer("eval_clips", 0, "Score at most this many test clips (0: all; --full: 0 = 1000).")
README = flags.DEFINE_string("readme", os.path.join(ROOT, "README.md"), "README to rewrite ('' to only print).")


class ExperimentError(SystemExit):
    """A one-line reason the experiment cannot go on (exit status 1)."""

    def __init__(self, message: str):
        super().__init__(f"{os.path.basename(sys.argv[0])}: {message}")


@dataclasses.dataclass(frozen=True)
class Entry:
    """One row of a table: a recipe file, its short preset, and dotted config overrides.

    `full_overrides` replace `overrides` under --full (e.g. a longer schedule is already the
    full preset's; only what the comparison changes belongs there)."""

    name: str
    config_file: str
    preset: str = "quick"
    overrides: dict = dataclasses.field(default_factory=dict)
    full_overrides: dict | None = None

    @property
    def config_name(self) -> str:
        return f"configs/{self.config_file}:{'full' if FULL.value else self.preset}"

    def run_dir(self, root: str | None = None) -> str:
        name = self.name
        for ch in " ()+,/×":
            name = name.replace(ch, "_")
        return os.path.join(root or WORKDIR.value, "_".join(p for p in name.split("_") if p))

    def train_args(self) -> list[str]:
        """The training binary's flags for this entry (under --full: Vimeo-90K)."""
        preset = "full" if FULL.value else self.preset
        overrides = dict(self.overrides if not FULL.value or self.full_overrides is None else self.full_overrides)
        if FULL.value:
            overrides.update(
                {"data.name": "vimeo90k", "data.manual_dir": vimeo_dir(), "eval.max_clips": EVAL_CLIPS.value or 1000}
            )
        elif EVAL_CLIPS.value:
            overrides["eval.max_clips"] = EVAL_CLIPS.value
        if STEPS.value:
            overrides["total_steps"] = STEPS.value
        args = [f"--config={os.path.join(ROOT, 'configs', self.config_file)}:{preset}"]
        args += [f"--config.{k}={_flag_value(v)}" for k, v in overrides.items()]
        return args


def _flag_value(v) -> str:
    if isinstance(v, (tuple, list)):
        return "(" + ",".join(str(x) for x in v) + ("," if len(v) == 1 else "") + ")"
    return str(v)


def vimeo_dir() -> str:
    path = os.path.expanduser(VIMEO_DIR.value)
    if not (
        os.path.exists(os.path.join(path, "vimeo_septuplet.zip"))
        or os.path.isdir(os.path.join(path, "vimeo_septuplet"))
        or os.path.exists(os.path.join(path, "sep_trainlist.txt"))
    ):
        raise ExperimentError(
            f"--full needs Vimeo-90K: put vimeo_septuplet.zip (or its unpacked vimeo_septuplet/) in {path} "
            "or pass --vimeo_dir (see the README, 'Vimeo-90K')"
        )
    return path


def final_step(workdir: str) -> int | None:
    """The run's newest checkpoint step when it reached its total_steps, else None."""
    from vsr_jax.evaluate.runs import checkpoint_steps

    config_path = os.path.join(workdir, "config.json")
    if not os.path.exists(config_path):
        return None
    with open(config_path) as f:
        total = int(json.load(f)["total_steps"])
    steps = checkpoint_steps(workdir) if os.path.isdir(os.path.join(workdir, "checkpoints")) else []
    return total if total in steps else None


def train(entry: Entry, *, env: dict | None = None, workdir: str | None = None) -> str:
    """Trains `entry` in its run folder with the training binary unless it already reached
    its last step; an interrupted run resumes. Returns the run folder."""
    workdir = workdir or entry.run_dir()
    done_at = final_step(workdir)
    if done_at is not None and STEPS.value in (0, done_at):
        return workdir
    os.makedirs(workdir, exist_ok=True)
    cmd = [sys.executable, "-m", "vsr_jax.main", f"--workdir={workdir}", *entry.train_args()]
    print(f"\n### {entry.name}: {' '.join(cmd[1:])}", flush=True)
    t0 = time.time()
    done = subprocess.run(cmd, env={**os.environ, **(env or {})}, cwd=ROOT)
    if done.returncode != 0:
        raise ExperimentError(f"training {entry.name!r} failed (exit {done.returncode}); rerun to resume it")
    fileio.write_text(os.path.join(workdir, "eval", "minutes.txt"), f"{(time.time() - t0) / 60:.2f}\n")
    return workdir


def minutes(workdir: str) -> float | None:
    """Wall-clock minutes of the training command (None when it was not run by a script)."""
    path = os.path.join(workdir, "eval", "minutes.txt")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return float(f.read())


def metrics_path(workdir: str, step: int, tag: str = "") -> str:
    """Where the metrics binary writes a checkpoint's scores (`tag`: another test set, e.g. 'sample_bd')."""
    return os.path.join(workdir, "eval", str(step), *([tag] if tag else []), "metrics.json")


def evaluate(workdirs: list[str], *eval_flags: str, tags: list[str] | None = None) -> list[dict]:
    """Scores the final checkpoint of each run with the metrics binary — one batch call for
    the runs not scored yet — and returns their metrics.json contents in order. `tags`: the
    test set each run's scores are filed under when `eval_flags` pick another one than the
    run's own (see `metrics_path`)."""
    steps = [final_step(w) for w in workdirs]
    tags = tags or [""] * len(workdirs)
    missing = [w for w, s in zip(workdirs, steps, strict=True) if s is None]
    if missing:
        raise ExperimentError(f"{missing[0]} has not finished training; rerun to finish it")
    paths = [metrics_path(w, s, t) for w, s, t in zip(workdirs, steps, tags, strict=True)]
    todo = [w for w, p in zip(workdirs, paths, strict=True) if not os.path.exists(p)]
    if todo:
        cmd = [sys.executable, "-m", "vsr_jax.evaluate", *[f"--workdir={w}" for w in todo], *eval_flags]
        if EVAL_CLIPS.value or FULL.value:
            cmd.append(f"--max_clips={EVAL_CLIPS.value or 1000}")
        print(f"\n### scoring: {' '.join(cmd[1:])}", flush=True)
        done = subprocess.run(cmd, cwd=ROOT)
        if done.returncode != 0:
            raise ExperimentError(f"the metrics binary failed (exit {done.returncode})")
    out = []
    for p in paths:
        with open(p) as f:
            out.append(json.load(f))
    return out


def publish(name: str, text: str) -> None:
    """Prints `text`, writes WORKDIR/<name>.md and rewrites the README block `name`
    (`name_full` under --full; a README without that block is left alone, with a note)."""
    block = f"{name}_full" if FULL.value else name
    text = text.strip() + "\n"
    print("\n" + text, flush=True)
    os.makedirs(WORKDIR.value, exist_ok=True)
    fileio.write_text(os.path.join(WORKDIR.value, f"{block}.md"), text)
    if not README.value:
        return
    if not replace_block(README.value, block, text):
        print(
            f"{README.value} has no '<!-- {block} -->' ... '<!-- /{block} -->' block; "
            f"add the two lines where the table belongs to publish it",
            flush=True,
        )
    else:
        print(f"rewrote the '{block}' table in {README.value}", flush=True)


def replace_block(path: str, block: str, text: str) -> bool:
    """Replaces what lies between `<!-- block -->` and `<!-- /block -->` in `path` (atomically).
    Returns False, changing nothing, when the file lacks the pair."""
    with open(path) as f:
        doc = f.read()
    start, end = f"<!-- {block} -->\n", f"<!-- /{block} -->"
    i = doc.find(start)
    j = doc.find(end, i + len(start)) if i >= 0 else -1
    if i < 0 or j < 0:
        return False
    fileio.write_text(path, doc[: i + len(start)] + text.strip() + "\n" + doc[j:])
    return True


def data_line(results: list[dict]) -> str:
    """'×4 on the bundled held-out shots (170 frames)' — what the numbers were measured on."""
    r = results[0]
    where = "Vimeo-90K's test list" if FULL.value else "the bundled held-out shots"
    return f"×{r['scale']} on {where} ({r['num_frames']} frames), Y channel (BT.601), crop {r['crop_border']}"


def machine_name() -> str:
    """'Intel(R) Xeon(R) Processor, 2 cores (AVX-512)' on a CPU (the cores this process may
    use), else the accelerators' count and kind, '8× TPU v5 lite'."""
    import jax

    if jax.default_backend() != "cpu":
        return f"{jax.device_count()}× {jax.devices()[0].device_kind}"
    name, isa = platform.processor() or platform.machine(), ""
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        name = re.search(r"^model name\s*:\s*(.+)$", info, re.M).group(1).strip()
        cpu_flags = set(re.search(r"^flags\s*:\s*(.+)$", info, re.M).group(1).split())
        isa = " (AVX-512)" if "avx512f" in cpu_flags else " (AVX2)" if "avx2" in cpu_flags else ""
    except (OSError, AttributeError):  # not Linux: the architecture only
        pass
    return f"{name}, {len(os.sched_getaffinity(0))} cores{isa}"


def machine_line() -> str:
    """'Intel(R) Xeon(R) Processor, 2 cores (AVX-512), 2026-11-30': the machine the numbers
    were measured on (as `machine_name`, plus the device count on a CPU), and the date."""
    import jax

    devices = f" ({jax.device_count()} devices)" if jax.default_backend() == "cpu" and jax.device_count() > 1 else ""
    return f"{machine_name()}{devices}, {datetime.date.today().isoformat()}"
