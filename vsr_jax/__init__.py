"""vsr_jax: video super-resolution in JAX/Flax."""

import os as _os

# TensorFlow is used for tf.data only: keep its C++ start-up chatter and oneDNN kernels out.
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

__version__ = "0.1.0"
