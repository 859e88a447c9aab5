import sys

import pytest
from spacy.util import load_config, registry
from thinc.api import Config

from spacy_lmcrf.training import memory
from spacy_lmcrf.training.callbacks import before_update_all
from spacy_lmcrf.training.memory import HeapTrimmer

from ..util import ROOT

CONFIGS = ROOT / "configs"


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


def test_trim_heap_callback_trims_every_n_steps(monkeypatch):
    calls = []
    monkeypatch.setattr(memory, "_malloc_trim", lambda pad: calls.append(pad) or 1)
    before_update = registry.callbacks.get("spacy_lmcrf.trim_heap.v1")(every=2)
    for step in range(5):
        before_update(None, {"step": step, "epoch": 0})
    assert calls == [0, 0]
    with pytest.raises(ValueError, match="every"):
        memory.trim_heap(every=0)


def test_before_update_all_runs_each_callback_in_order():
    seen = []
    config = Config().from_str(
        """
        [before_update]
        @callbacks = "spacy_lmcrf.before_update_all.v1"

        [before_update.*.trim]
        @callbacks = "spacy_lmcrf.trim_heap.v1"

        [before_update.*.budget]
        @callbacks = "spacy_lmcrf.stop_after_minutes.v1"
        minutes = 5
        """
    )
    before_update = registry.resolve(config)["before_update"]
    before_update(None, {"step": 0, "epoch": 0})
    chained = before_update_all(lambda nlp, args: seen.append(1), lambda nlp, args: seen.append(2))
    chained(None, {"step": 0, "epoch": 0})
    assert seen == [1, 2]


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.cfg")), ids=lambda p: p.stem)
def test_configs_of_our_components_trim_the_heap(path):
    """The heap trimming that components once did in finish_update is each training
    config's [training.before_update] now (spaCy's own pipelines do not need it)."""
    config = load_config(path, interpolate=False)
    if "training" not in config or "components" not in config:
        pytest.skip("not a spaCy training config")
    factories = {c.get("factory") for c in config["components"].values()}
    if not any(f and f.startswith("lm_crf") for f in factories):
        pytest.skip("no component of ours")
    assert config["training"]["before_update"]["@callbacks"] == "spacy_lmcrf.trim_heap.v1"
