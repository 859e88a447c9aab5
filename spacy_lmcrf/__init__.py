"""LM-augmented CRF sequence labeling for spaCy."""
from . import ml, optimizers, pipeline  # noqa: F401  (registers architectures, factories, optimizers)

from .about import __version__  # noqa: F401
