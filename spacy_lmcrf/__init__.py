"""LM-augmented CRF sequence labeling for spaCy."""
# Importing registers the architectures, factories, optimizers, loggers, readers, callbacks.
from . import callbacks, corpus, loggers, ml, optimizers, pipeline  # noqa: F401

from .about import __version__  # noqa: F401
