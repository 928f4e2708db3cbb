"""Command-line tools run as ``python -m vsr_jax.tools.<name>`` (file conversion and the like)."""
