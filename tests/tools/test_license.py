"""A pipeline trained from a shipped config carries the license in its meta: the configs'
[initialize.after_init] callback (spacy_lmcrf.set_meta.v1) writes it at initialization,
meta.json keeps it, and spacy_lmcrf.extract passes it on."""

import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training.initialize import init_nlp
from spacy.util import load_config

from spacy_lmcrf.extract import extract

from ..util import ROOT, ner_examples

CONFIGS = ROOT / "configs"
# spaCy's own NER and tagger, the benchmarks' peers (no component of ours), and the LM
# pretraining configs (no spaCy pipeline) are not pipelines of this package.
NOT_OURS = {
    "spacy_ner_cpu",
    "spacy_ner_cpu_accuracy",
    "spacy_tagger_cpu",
    "charlm_en",
    "charlm_es",
    "wordlm_en",
}


def _pipeline_configs():
    return sorted(
        p
        for p in CONFIGS.glob("*.cfg")
        if p.stem not in NOT_OURS and not p.stem.startswith("spacy_")
    )


@pytest.mark.parametrize("path", _pipeline_configs(), ids=lambda p: p.stem)
def test_every_shipped_pipeline_config_sets_the_license(path):
    after_init = load_config(path)["initialize"]["after_init"]
    assert after_init == {"@callbacks": "spacy_lmcrf.set_meta.v1", "license": "MIT"}


def test_set_meta_callback_resolves():
    callback = spacy.util.registry.callbacks.get("spacy_lmcrf.set_meta.v1")(license="CC-BY-4.0")
    nlp = spacy.blank("en")
    assert callback(nlp) is nlp and nlp.meta["license"] == "CC-BY-4.0"


@pytest.mark.slow
def test_pipeline_from_a_shipped_config_carries_the_license(tmp_path):
    data = tmp_path / "data.spacy"
    DocBin(docs=[eg.reference for eg in ner_examples(spacy.blank("en"))]).to_disk(data)
    tiny = {
        f"components.lm_crf_ner.model.tok2vec.{k}": v
        for k, v in {"char_dim": 8, "char_hidden": 16, "width": 16, "min_freq": 1}.items()
    }
    config = load_config(
        CONFIGS / "lmcrf_ner.cfg",
        overrides={**tiny, "paths.train": str(data), "paths.dev": str(data)},
    )
    nlp = init_nlp(config)
    assert nlp.meta["license"] == "MIT"
    nlp.to_disk(tmp_path / "model")
    loaded = spacy.load(tmp_path / "model")
    assert loaded.meta["license"] == "MIT"
    single = extract(loaded, ["lm_crf_ner"], name="ner")
    single.to_disk(tmp_path / "single")
    assert spacy.load(tmp_path / "single").meta["license"] == "MIT"
