"""How many intra-op threads torch runs our models on.

- A process forked from one that has used torch's threads (spaCy's
  ``nlp.pipe(texts, n_process=N)`` forks its workers on Linux) gets one thread: GNU
  OpenMP does not survive a fork, and the child's first parallel region would wait
  forever for the parent's threads (the ``n_process=2`` hang). One thread per worker is
  also what PyTorch recommends when processes share the cores.
- ``SPACY_LMCRF_TORCH_THREADS=N`` sets the number when spacy_lmcrf is imported, for a
  machine whose cores other work shares: torch's threads wait for one another at every
  operation, so beside one CPU-bound process the LM-LSTM-CRF pipeline labels 35 % of its
  idle speed on 2 threads and 78 % on one (benchmarks/RESULTS.md, issue 18).
- Otherwise torch's default stands (one thread per core).
"""

import os
from typing import Optional

import torch

THREADS_ENV = "SPACY_LMCRF_TORCH_THREADS"


def threads_from_env(value: Optional[str]) -> Optional[int]:
    """The thread count SPACY_LMCRF_TORCH_THREADS asks for (None if unset or empty)."""
    if value is None or not value.strip():
        return None
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ValueError(f"{THREADS_ENV} must be a whole number of at least 1, got {value!r}")
    return threads


def one_thread_after_fork() -> None:
    torch.set_num_threads(1)


def configure_torch_threads() -> None:
    """Apply SPACY_LMCRF_TORCH_THREADS, and give forked processes one thread."""
    threads = threads_from_env(os.environ.get(THREADS_ENV))
    if threads is not None:
        torch.set_num_threads(threads)
    os.register_at_fork(after_in_child=one_thread_after_fork)
