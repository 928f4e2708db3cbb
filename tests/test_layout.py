"""The import directions of README "Layout" / ../shared/notes/architecture.md, read from the
source (lazy imports inside functions included) and checked once at run time for the upscaler."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "vsr_jax"
# the training stack: what evaluate/, upscale/, pretrained/ and data/ must never import
TRAINING = {
    "train",
    "train_state",
    "train_step",
    "optimizers",
    "adversarial",
    "nonfinite",
    "preemption",
    "resume",
    "init_from",
    "main",
    "bench",
    "bench_models",
}


def _imports(path: pathlib.Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function: 'vsr_jax.x.y', 'tensorflow', ..."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
            if node.module == "vsr_jax" or node.module.startswith("vsr_jax."):
                found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _ours(path: pathlib.Path) -> set[str]:
    """The first component under vsr_jax of each of our modules `path` imports ('models', 'train', ...)."""
    return {m.split(".")[1] for m in _imports(path) if m.startswith("vsr_jax.")}


def _files(area: str) -> list[pathlib.Path]:
    files = sorted((PACKAGE / area).rglob("*.py")) if (PACKAGE / area).is_dir() else [PACKAGE / f"{area}.py"]
    assert files, area
    return files


@pytest.mark.parametrize(
    "area, forbidden",
    [
        ("models", "everything of ours but models"),
        ("data", TRAINING | {"models", "evaluate", "upscale", "pretrained"}),
        ("evaluate", TRAINING),
        ("upscale", TRAINING | {"data"}),
        ("pretrained", TRAINING),
        ("metrics", "everything of ours"),
    ],
)
def test_import_directions(area, forbidden):
    bad = {}
    for path in _files(area):
        ours = _ours(path)
        if forbidden == "everything of ours but models":
            hits = ours - {"models"}
        elif forbidden == "everything of ours":
            hits = ours
        else:
            hits = ours & forbidden
        if area == "upscale":
            hits |= {m for m in _imports(path) if m.split(".")[0] in ("tensorflow", "tensorflow_datasets")}
        if hits:
            bad[str(path.relative_to(ROOT))] = sorted(hits)
    assert not bad, f"{area}/ imports what it must not: {bad}"


def test_the_checker_sees_lazy_imports(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from vsr_jax import train\n    import tensorflow as tf\n")
    assert _ours(src) == {"train"} and "tensorflow" in _imports(src)


def test_the_upscaler_starts_without_tensorflow_data_or_training():
    """At run time too: vsr-upscale's modules (and the run / weight-file readers they use)."""
    code = (
        "import sys, vsr_jax.upscale.__main__, vsr_jax.upscale.sources, vsr_jax.upscale.job, vsr_jax.evaluate.runs\n"
        f"bad = [m for m in sys.modules if m.split('.')[0] == 'tensorflow' or m.startswith('vsr_jax.data') "
        f"or (m.startswith('vsr_jax.') and m.split('.')[1] in {sorted(TRAINING)!r})]\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
