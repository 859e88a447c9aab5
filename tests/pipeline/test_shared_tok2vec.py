"""LM-LSTM-CRF's tok2vec shared through spaCy's tok2vec component and listeners."""

import pytest
import spacy
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import make_tempdir
from thinc.api import Adam

from spacy_lmcrf.ml.models.lm_lstm_tok2vec import get_vocabularies

from ..util import TINY_TOK2VEC, tagged_ner_examples


def _shared_nlp():
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "tok2vec",
        config={"model": {"@architectures": "spacy_lmcrf.LMLSTMTok2Vec.v1", **TINY_TOK2VEC}},
    )
    listener = {
        "@architectures": "spacy.Tok2VecListener.v1",
        "width": TINY_TOK2VEC["width"],
        "upstream": "*",
    }
    nlp.add_pipe("lm_crf_ner", config={"model": {"tok2vec": listener}})
    nlp.add_pipe("lm_crf_tagger", config={"model": {"tok2vec": listener}})
    return nlp


@pytest.mark.slow
def test_shared_tok2vec_trains_both_heads_and_sees_all_docs():
    nlp = _shared_nlp()
    examples = tagged_ner_examples(nlp)
    assert len(examples) > 10
    nlp.initialize(lambda: examples)
    tok2vec_model = nlp.get_pipe("tok2vec").model
    vocab = get_vocabularies(tok2vec_model)
    # the listening components extended the ten-doc sample's vocabulary to all docs
    assert "w3" in vocab.words  # first seen in doc 13
    module = tok2vec_model.get_ref("encoder").shims[0]._model
    lstm_before = module.char_lm.fwd_lstm.weight_hh_l0.detach().clone()
    optimizer = Adam(0.01)
    # 100 steps: at 60, 4 of 10 seeds (with the old encoder as with BiRNNEncoder) ended
    # between 0.2 and 1.3, the others below 0.11; at 100, three such seeds end below 0.01
    for _ in range(100):
        losses = nlp.update(examples, sgd=optimizer)
    assert losses["lm_crf_ner"] < 0.2 and losses["lm_crf_tagger"] < 0.2
    assert losses["tok2vec_lm"] > 0
    assert not module.char_lm.fwd_lstm.weight_hh_l0.detach().equal(lstm_before)
    texts = [eg.reference.text for eg in examples[:4]]
    docs = list(nlp.pipe(texts))
    assert [[(e.start, e.end, e.label_) for e in d.ents] for d in docs] == [
        [(e.start, e.end, e.label_) for e in eg.reference.ents] for eg in examples[:4]
    ]
    with make_tempdir() as tmp:
        nlp.to_disk(tmp)
        nlp2 = spacy.load(tmp)
        docs2 = list(nlp2.pipe(texts))
    assert [[t.tag_ for t in d] for d in docs2] == [[t.tag_ for t in d] for d in docs]
    assert [d.ents for d in docs2].__repr__() == [d.ents for d in docs].__repr__()


def _lm_losses(nlp, examples):
    """The LM loss the shared tok2vec computes for examples, and the losses the
    components report for the same batch (no optimizer step)."""
    tok2vec = nlp.get_pipe("tok2vec")
    tok2vec.update(examples)
    computed = tok2vec.model.attrs["last_lm_loss"]
    losses = {}
    for name, proc in nlp.pipeline:
        if name != "tok2vec":
            proc.update(examples, losses=losses)
    return computed, losses


@pytest.mark.slow
def test_shared_lm_loss_is_reported_once_under_the_tok2vec():
    nlp = _shared_nlp()
    examples = tagged_ner_examples(nlp)
    nlp.initialize(lambda: examples)
    computed, losses = _lm_losses(nlp, examples)
    assert computed > 0
    assert losses["tok2vec_lm"] == pytest.approx(computed)  # two listeners, counted once
    assert "lm_crf_ner_lm" not in losses and "lm_crf_tagger_lm" not in losses
    # also when the first listener sits out the batch (no NER annotation)
    no_ner = [
        Example(
            eg.predicted,
            Doc(
                nlp.vocab, words=[t.text for t in eg.reference], tags=[t.tag_ for t in eg.reference]
            ),
        )
        for eg in examples
    ]
    computed, losses = _lm_losses(nlp, no_ner)
    assert losses["tok2vec_lm"] == pytest.approx(computed)
    # and in a pipeline loaded from disk, trained without initialize
    optimizer = Adam(0.01)
    with make_tempdir() as tmp:
        nlp.to_disk(tmp)
        nlp2 = spacy.load(tmp)
    first = nlp2.update(examples, sgd=optimizer)["tok2vec_lm"]
    for _ in range(20):
        losses = nlp2.update(examples, sgd=optimizer)
    assert 0 < losses["tok2vec_lm"] < first
