"""A stand-in for torchvision in the reference venv: PyPI's torchvision wheel does not load
with the CPU torch wheel here, and basicsr's architectures need only these names."""

__version__ = "0.28.0"
from . import ops, transforms  # noqa
