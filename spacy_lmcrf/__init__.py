"""LM-augmented CRF sequence labeling for spaCy."""

# Importing registers the architectures, factories, optimizers, loggers, readers, callbacks.
from . import ml, pipeline  # noqa: F401
from .about import __version__  # noqa: F401
from .threads import configure_torch_threads
from .training import batchers, callbacks, corpus, loggers, memory, optimizers  # noqa: F401

configure_torch_threads()
