"""experiments/common.py: the README blocks the scripts rewrite, and the commands they run.

The scripts themselves train for minutes (they are run by hand; their tables are in the
README). This checks the parts every script relies on, in a subprocess because the
scripts define absl flags (`--workdir`) that the package's binaries define too.
"""

import json
import subprocess
import sys
import textwrap

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
