"""experiments/common.py: the README blocks the scripts rewrite, and the commands they run.

The scripts themselves train for minutes (they are run by hand; their tables are in the
README). This checks the parts every script relies on, in a subprocess because the
scripts define absl flags (`--workdir`) that the package's binaries define too.
"""

import json
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import ROOT

_PROBE = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, "experiments")
    import common
    from absl import flags

    readme, workdir = sys.argv[1], sys.argv[2]
    out = {}
    out["replaced"] = common.replace_block(readme, "demo", "| a |\\n|---|\\n| 1 |")
    out["missing"] = common.replace_block(readme, "absent", "x")
    flags.FLAGS([sys.argv[0], f"--workdir={workdir}", "--steps=7", f"--readme={readme}"])
    entry = common.Entry("srresnet trained on BD", "srresnet.py", overrides={"data.degradation": "bd"})
    out["run_dir"] = entry.run_dir()
    out["args"] = entry.train_args()
    common.publish("demo", "| b |\\n|---|\\n| 2 |")
    flags.FLAGS.full = True
    flags.FLAGS.vimeo_dir = workdir + "/no_vimeo_here"
    try:
        entry.train_args()
    except SystemExit as e:
        out["full_error"] = str(e)
    print(json.dumps(out))
    """
)


def test_readme_blocks_and_training_commands(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- demo -->\nold table\n<!-- /demo -->\noutro\n")
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, str(readme), str(tmp_path / "runs")],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["replaced"] is True and out["missing"] is False
    # publish() rewrote the block again, and kept what lies around it
    assert readme.read_text() == "intro\n<!-- demo -->\n| b |\n|---|\n| 2 |\n<!-- /demo -->\noutro\n"
    assert (tmp_path / "runs" / "demo.md").read_text() == "| b |\n|---|\n| 2 |\n"
    assert out["run_dir"] == str(tmp_path / "runs" / "srresnet_trained_on_BD")
    assert out["args"] == [
        f"--config={ROOT / 'configs' / 'srresnet.py'}:quick",
        "--config.data.degradation=bd",
        "--config.total_steps=7",
    ]
    assert "--full needs Vimeo-90K" in out["full_error"] and "vimeo_septuplet.zip" in out["full_error"]


def test_upscale_table_measures_and_rewrites_its_readme_block(tmp_path):
    """experiments/upscale_table.py end to end on a tiny model and clips: `vsr-bench upscale`
    runs, its JSON becomes the README block with the date, machine and command, and a rerun
    reads the measured case instead of measuring it again."""
    readme = tmp_path / "README.md"
    readme.write_text("intro\n<!-- upscale_bench -->\nold table\n<!-- /upscale_bench -->\noutro\n")
    cmd = [
        sys.executable, "experiments/upscale_table.py", f"--workdir={tmp_path / 'runs'}", f"--readme={readme}",
        "--cases=configs/gan.py:tiny", "--lengths=2,3", "--size=16x24",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((tmp_path / "runs" / "upscale_bench.json").read_text())
    (case,) = result["cases"]
    assert case["size"] == "16x24" and [r["frames"] for r in case["rows"]] == [2, 3]
    for r in case["rows"]:
        assert r["fps"] > 0 and r["first_chunk_s"] > 0 and 100 < r["peak_rss_mb"] < 20000, r
    text = readme.read_text()
    assert text.startswith("intro\n<!-- upscale_bench -->\n") and text.endswith("<!-- /upscale_bench -->\noutro\n")
    rows = [line.split(" | ") for line in text.splitlines() if line.startswith("| `configs/gan.py:tiny` |")]
    assert [r[1] for r in rows] == ["2", "3"] and "(×" in rows[1][3]  # RSS growth from the shortest clip
    assert f"\n{result['date']} · {result['machine']} · jax " in text
    assert "`python experiments/upscale_table.py --cases=configs/gan.py:tiny --lengths=2,3 --size=16x24`" in text
    # a rerun reads the measured case: no vsr-bench run (which prints its "model:" line)
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert again.returncode == 0 and "model:" not in again.stdout, again.stderr[-2000:]
    assert [line for line in readme.read_text().splitlines() if line.startswith("| `")] == [" | ".join(r) for r in rows]


@pytest.mark.slow
def test_quick_curve_scores_every_checkpoint_and_rewrites_its_readme_block(tmp_path):
    """experiments/quick_curve.py end to end, 4 steps of the :quick video preset with a
    checkpoint every 2: both checkpoints are scored by the metrics binary, the table gives
    each step's minutes (from the run's TensorBoard log) and gain over bicubic, and a rerun
    reads the finished run and its scores instead of training or scoring again (~2 min)."""
    readme = tmp_path / "README.md"
    readme.write_text("<!-- quick_curve -->\nold\n<!-- /quick_curve -->\n")
    cmd = [
        sys.executable, "experiments/quick_curve.py", f"--workdir={tmp_path / 'runs'}", f"--readme={readme}",
        "--entry=quick", "--steps=4", "--every=2",
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "runs" / "convlstm_quick"
    scores = [json.loads((run / "eval" / str(s) / "metrics.json").read_text()) for s in (2, 4)]
    rows = [
        line.split(" | ")
        for line in readme.read_text().splitlines()
        if line.startswith("| 2 |") or line.startswith("| 4 |")
    ]
    assert len(rows) == 2
    for row, r in zip(rows, scores, strict=True):
        assert 0 < float(row[1]) < 15  # minutes since the command started
        assert row[2] == f"{r['psnr_y']:.2f}" and row[3] == f"{r['psnr_y'] - r['bicubic_psnr_y']:+.2f} dB"
    assert float(rows[0][1]) <= float(rows[1][1])
    assert "`python -m vsr_jax.main --config=configs/convlstm.py:quick --config.total_steps=4`" in readme.read_text()
    again = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert again.returncode == 0 and "### scoring" not in again.stdout and "###" not in again.stdout, again.stdout[
        -2000:
    ]
