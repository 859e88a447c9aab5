import sys

import pytest

from spacy_lmcrf.training import memory
from spacy_lmcrf.training.memory import HeapTrimmer


def test_heap_trimmer_trims_every_n_steps(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "_malloc_trim", lambda pad: calls.append(pad) or 1)
    trimmer = HeapTrimmer(every=3)
    done = [trimmer.step() for _ in range(7)]
    assert done == [False, False, True, False, False, True, False]
    assert calls == [0, 0]


def test_heap_trimmer_without_malloc_trim_does_nothing(monkeypatch):
    monkeypatch.setattr(memory, "_malloc_trim", None)
    trimmer = HeapTrimmer(every=1)
    assert not any(trimmer.step() for _ in range(3))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc only")
def test_malloc_trim_is_found_on_linux():
    assert memory._malloc_trim is not None
    assert memory._malloc_trim(0) in (0, 1)
