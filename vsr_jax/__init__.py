"""vsr_jax: video super-resolution in JAX/Flax."""

import os as _os

# TensorFlow is used for tf.data only: keep its C++ start-up chatter and oneDNN kernels out.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"

YNN_FLAG = "--xla_cpu_experimental_ynn_fusion_type"


def _jaxlib_has_flag(name: str) -> bool:
    """Whether the installed jaxlib knows the XLA flag `name` (XLA aborts the process on an
    unknown one), found without importing jax: the flag's name in jaxlib's XLA library."""
    import importlib.util
    import mmap

    spec = importlib.util.find_spec("jaxlib")
    if spec is None or not spec.submodule_search_locations:
        return False
    path = _os.path.join(list(spec.submodule_search_locations)[0], "libjax_common.so")
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            return m.find(name.encode()) >= 0
    except (OSError, ValueError):
        return False


def _fast_cpu_matmuls() -> None:
    """XLA:CPU runs dots (and the matmul convolutions of the recurrent models' training
    loops) through YNNPACK: measured in `vsr-bench` on a 2-core AVX2 machine (one run with
    the flag, one without; the README's Benchmark), SRResNet inference at 64×64
    1.19× and its training step 2.84× faster. It must be in XLA_FLAGS
    before JAX starts its CPU backend, so it is set when vsr_jax is imported. Only the CPU
    backend reads it. VSR_JAX_YNN=0 turns it off; a YNN setting of your own in XLA_FLAGS
    is kept."""
    flags = _os.environ.get("XLA_FLAGS", "")
    if _os.environ.get("VSR_JAX_YNN", "1") == "0" or YNN_FLAG in flags:
        return
    if _jaxlib_has_flag(YNN_FLAG.lstrip("-")):
        _os.environ["XLA_FLAGS"] = f"{flags} {YNN_FLAG}=dot".strip()


_fast_cpu_matmuls()
