"""lm_crf_ner after an entity_ruler keeps the ruler's entities, as spaCy's ner does, and
decodes the rest around them; overwrite_ents replaces them instead."""

import pytest
import spacy
from spacy.tokens import Doc, Span

from ..util import make_nlp, ner_examples, train

PATTERNS = [
    {"label": "GPE", "pattern": "Berlin", "id": "berlin"},  # a label the CRF does not know
    {"label": "ORG", "pattern": [{"LOWER": "peter"}, {"LOWER": "blackburn"}]},
]
TEXT = "Peter Blackburn lives in Berlin ."


@pytest.fixture(scope="module")
def trained():
    nlp = make_nlp("lm_crf_ner")
    train(nlp, ner_examples(nlp), 30)
    return nlp


def _ents(doc):
    return [(e.start, e.end, e.label_) for e in doc.ents]


@pytest.mark.slow
def test_entity_ruler_before_lm_crf_ner_is_kept(trained, tmp_path):
    plain = _ents(trained(TEXT))
    assert (0, 2, "PER") in plain and (4, 5, "LOC") in plain  # what it learnt
    ruler = trained.add_pipe("entity_ruler", before="lm_crf_ner")
    ruler.add_patterns(PATTERNS)
    try:
        doc = trained(TEXT)
        ents = _ents(doc)
        assert (0, 2, "ORG") in ents and (4, 5, "GPE") in ents
        assert doc.ents[ents.index((4, 5, "GPE"))].ent_id_ == "berlin"  # the ruler's own span
        scores = dict(zip(ents, doc.spans["lm_crf_ner"].attrs["scores"].tolist()))
        assert scores[(0, 2, "ORG")] == pytest.approx(1.0, abs=1e-5)
        assert scores[(4, 5, "GPE")] == 1.0
        # the CRF still finds what the ruler does not set
        other = trained("Angela Merkel met Emmanuel Macron in Berlin")
        assert (6, 7, "GPE") in _ents(other)
        assert any(label == "PER" for _, _, label in _ents(other))
        # and the setting travels with the pipeline
        trained.to_disk(tmp_path / "kept")
        assert _ents(spacy.load(tmp_path / "kept")(TEXT)) == _ents(doc)
    finally:
        trained.remove_pipe("entity_ruler")


@pytest.mark.slow
def test_overwrite_ents_replaces_preset_entities(trained, tmp_path):
    trained.to_disk(tmp_path / "plain")
    config = {"components": {"lm_crf_ner": {"overwrite_ents": True}}}
    nlp = spacy.load(tmp_path / "plain", config=config)
    assert nlp.get_pipe("lm_crf_ner").overwrite_ents
    nlp.add_pipe("entity_ruler", before="lm_crf_ner").add_patterns(PATTERNS)
    assert _ents(nlp(TEXT)) == _ents(trained(TEXT))
    nlp.to_disk(tmp_path / "overwrite")
    assert spacy.load(tmp_path / "overwrite").get_pipe("lm_crf_ner").overwrite_ents


def test_preset_entity_across_sentences_or_on_whitespace_is_kept(trained):
    """Entities the CRF cannot represent (over a sentence boundary, with a whitespace
    token) are kept as they are, and nothing decoded overlaps them."""
    ner = trained.get_pipe("lm_crf_ner")
    words = ["Peter", "Blackburn", "lives", "in", "Berlin", "\n", "Paris", "."]
    doc = Doc(trained.vocab, words=words, sent_starts=[1, 0, 0, 0, 0, 0, 1, 0])
    doc.set_ents([Span(doc, 1, 3, "MISC"), Span(doc, 4, 7, "LOC")])
    ner(doc)
    ents = _ents(doc)
    assert (1, 3, "MISC") in ents and (4, 7, "LOC") in ents
    covered = [i for s, e, _ in ents for i in range(s, e)]
    assert len(covered) == len(set(covered))
    scores = dict(zip(ents, doc.spans["lm_crf_ner"].attrs["scores"].tolist()))
    assert scores[(1, 3, "MISC")] == scores[(4, 7, "LOC")] == 1.0
