"""Joint training (Yang et al. 2016): a head learns only from the docs that carry its
annotation (and come from its corpus); docs without it add no loss, no gradient and no
optimizer step, and a head that sits out a batch still passes the shared tok2vec on."""

import pytest
import spacy
import torch
from spacy.tokens import Doc, Span
from spacy.training import Example
from thinc.api import Adam

from spacy_lmcrf.training.corpus import CORPUS_KEY

from ..util import (
    CHUNK_DATA,
    NER_DATA,
    TAG_DATA,
    TINY_TOK2VEC,
    chunk_examples,
    ner_examples,
    tag_examples,
)

GRU_TOK2VEC = {
    "@architectures": "spacy_lmcrf.WordCharTok2Vec.v1",
    "word_embed": {"@architectures": "spacy_lmcrf.WordEmbedding.v1", "width": 8, "min_freq": 1},
    "char_embed": {"@architectures": "spacy_lmcrf.CharBiGRU.v1", "char_dim": 4, "hidden": 4},
    "encoder": {"@architectures": "spacy_lmcrf.BiGRUEncoder.v1", "width": 8},
}
LISTENER = {"@architectures": "spacy.Tok2VecListener.v1", "width": 8, "upstream": "*"}
HEADS = {
    "lm_crf_ner": ner_examples,
    "lm_crf_tagger": tag_examples,
    "lm_crf_spans": lambda nlp: chunk_examples(nlp, key="sc"),
}


def _unannotated(nlp, texts):
    """Examples whose reference has no annotation at all."""
    return [Example(nlp.make_doc(t), Doc(nlp.vocab, words=t.split())) for t in texts]


def _head_params(component):
    return [
        p.detach().clone() for p in component.model.get_ref("crf_head").shims[0]._model.parameters()
    ]


def _params(model):
    return [
        p.detach().clone()
        for node in model.walk()
        for shim in node.shims
        for p in shim._model.parameters()
    ]


def _same(a, b):
    return all(x.equal(y) for x, y in zip(a, b))


def _step(nlp, batch, optimizer):
    """One step as spaCy's training loop takes it: every component's update, then every
    finish_update (nlp.update(sgd=...) would step the tok2vec before its listeners
    have passed their gradients back)."""
    losses = nlp.update(batch, sgd=False)
    for _, proc in nlp.pipeline:
        proc.finish_update(optimizer)
    return losses


def _inline_nlp(factory):
    nlp = spacy.blank("en")
    nlp.add_pipe(factory, config={"model": {"pairwise": "small", "tok2vec": GRU_TOK2VEC}})
    return nlp


@pytest.mark.parametrize("factory", sorted(HEADS))
def test_head_is_not_updated_by_docs_without_its_annotation(factory):
    nlp = _inline_nlp(factory)
    examples = HEADS[factory](nlp)
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.01)  # momentum: any step after a first one would move the weights
    nlp.update(examples, sgd=optimizer)
    component = nlp.get_pipe(factory)
    before = _params(component.model)
    unannotated = _unannotated(nlp, ["Peter eats green ham", "The dog said Berlin"])
    assert not any(component.trains_on(eg) for eg in unannotated)
    losses = nlp.update(unannotated, sgd=optimizer)
    assert losses[factory] == 0.0
    assert _same(before, _params(component.model))


def test_unannotated_docs_in_a_mixed_batch_add_no_gradient():
    nlp = _inline_nlp("lm_crf_ner")
    examples = ner_examples(nlp)
    nlp.initialize(lambda: examples)
    ner = nlp.get_pipe("lm_crf_ner")
    module = ner.model.get_ref("crf_head").shims[0]._model

    def head_grads(batch):
        for p in module.parameters():
            p.grad = None
        scores, backprop = ner.model.begin_update([eg.predicted for eg in batch])
        loss, d_potentials = ner.get_loss(batch, scores)
        backprop(d_potentials)
        return loss, [p.grad.clone() for p in module.parameters()]

    loss_alone, alone = head_grads(examples[:2])
    loss_mixed, mixed = head_grads(
        examples[:2] + _unannotated(nlp, ["Peter eats green ham in Paris"])
    )
    assert loss_mixed == pytest.approx(loss_alone, rel=1e-5)
    for a, b in zip(alone, mixed):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_spans_key_absent_is_unannotated_and_key_present_but_empty_is_all_O():
    nlp = _inline_nlp("lm_crf_spans")
    examples = chunk_examples(nlp, key="sc")
    nlp.initialize(lambda: examples)
    spans = nlp.get_pipe("lm_crf_spans")
    absent = _unannotated(nlp, ["Prices rose"])[0]
    ref = Doc(nlp.vocab, words=["Prices", "rose"])
    ref.spans["sc"] = []
    empty = Example(nlp.make_doc("Prices rose"), ref)
    assert not spans.trains_on(absent) and spans.trains_on(empty)
    assert spans._gold_tags(empty) == ["O", "O"]
    assert spans._gold_tags(absent) == [None, None]
    optimizer = Adam(0.01)
    before = _head_params(spans)
    assert nlp.update([empty], sgd=optimizer)["lm_crf_spans"] > 0
    assert not _same(before, _head_params(spans))


def _multitask_nlp():
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec", config={"model": GRU_TOK2VEC})
    for factory in ("lm_crf_tagger", "lm_crf_spans", "lm_crf_ner"):
        nlp.add_pipe(factory, config={"model": {"pairwise": "small", "tok2vec": LISTENER}})
    return nlp


def _multitask_examples(nlp):
    return ner_examples(nlp) + tag_examples(nlp) + chunk_examples(nlp, key="sc")


def test_shared_tok2vec_is_one_set_of_tensors_reached_by_every_head():
    nlp = _multitask_nlp()
    examples = _multitask_examples(nlp)
    nlp.initialize(lambda: examples)
    tok2vec = nlp.get_pipe("tok2vec").model
    module = tok2vec.get_ref("encoder").shims[0]._model
    table = module.word_embed.table.weight
    for name in ("lm_crf_tagger", "lm_crf_spans", "lm_crf_ner"):
        head = nlp.get_pipe(name).model
        # each head holds a listener, not a copy of the tok2vec's weights
        assert not any(shim._model is module for node in head.walk() for shim in node.shims)
        assert any(node.name == "tok2vec-listener" for node in head.walk())
    # every head's gradient alone reaches the shared table: one task's batch at a time
    optimizer = Adam(0.01)
    for batch in (ner_examples(nlp), tag_examples(nlp), chunk_examples(nlp, key="sc")):
        before = table.detach().clone()
        losses = _step(nlp, batch, optimizer)
        assert module.word_embed.table.weight is table  # updated in place, one tensor
        assert not table.detach().equal(before)
        trained = [
            name for name in ("lm_crf_tagger", "lm_crf_spans", "lm_crf_ner") if losses[name] > 0
        ]
        assert len(trained) == 1


def test_last_listener_sitting_out_still_lets_the_shared_tok2vec_learn():
    nlp = _multitask_nlp()  # lm_crf_ner is the tok2vec's last listener
    examples = _multitask_examples(nlp)
    nlp.initialize(lambda: examples)
    assert nlp.get_pipe("tok2vec").listeners[-1] is nlp.get_pipe("lm_crf_ner").model.get_ref(
        "tok2vec"
    )
    optimizer = Adam(0.01)
    _step(nlp, examples, optimizer)
    ner = nlp.get_pipe("lm_crf_ner")
    ner_before = _head_params(ner)
    shared = [
        p
        for node in nlp.get_pipe("tok2vec").model.walk()
        for shim in node.shims
        for p in shim._model.parameters()
    ]
    losses = nlp.update(tag_examples(nlp), sgd=False)
    assert losses["lm_crf_tagger"] > 0 and losses["lm_crf_ner"] == 0.0
    # the tagger's gradient reached the shared weights although the last listener sat out
    assert sum(float(p.grad.abs().sum()) for p in shared if p.grad is not None) > 0
    for _, proc in nlp.pipeline:
        proc.finish_update(optimizer)
    assert _same(ner_before, _head_params(ner))


@pytest.mark.slow
def test_multitask_overfits_and_round_trips(tmp_path):
    nlp = _multitask_nlp()
    examples = _multitask_examples(nlp)
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.01)
    batches = [ner_examples(nlp), tag_examples(nlp), chunk_examples(nlp, key="sc")]
    for _ in range(60):
        for batch in batches:
            _step(nlp, batch, optimizer)
    texts = [t for t, _ in NER_DATA]
    docs = list(nlp.pipe(texts))
    assert [[(e.start, e.end, e.label_) for e in d.ents] for d in docs] == [
        [(e.start, e.end, e.label_) for e in eg.reference.ents] for eg in batches[0]
    ]
    tag_docs = list(nlp.pipe([t for t, _ in TAG_DATA]))
    assert [[t.tag_ for t in d] for d in tag_docs] == [tags for _, tags in TAG_DATA]
    chunk_docs = list(nlp.pipe([t for t, _ in CHUNK_DATA]))
    assert [[(s.start, s.end, s.label_) for s in d.spans["sc"]] for d in chunk_docs] == [
        s for _, s in CHUNK_DATA
    ]
    nlp.to_disk(tmp_path)
    nlp2 = spacy.load(tmp_path)
    docs2 = list(nlp2.pipe(texts))
    assert [d.ents for d in docs2].__repr__() == [d.ents for d in docs].__repr__()
    assert [[t.tag_ for t in d] for d in nlp2.pipe([t for t, _ in TAG_DATA])] == [
        tags for _, tags in TAG_DATA
    ]


def _two_corpora(examples):
    """The first two examples in corpus "en", the others in "es"."""
    for i, eg in enumerate(examples):
        for doc in (eg.predicted, eg.reference):
            doc.user_data[CORPUS_KEY] = "en" if i < 2 else "es"
    return examples


def test_corpus_restricted_head_trains_and_annotates_only_its_corpus():
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "lm_crf_ner",
        name="ner_en",
        config={"corpus": "en", "model": {"pairwise": "small", "tok2vec": GRU_TOK2VEC}},
    )
    examples = _two_corpora(ner_examples(nlp))
    nlp.initialize(lambda: examples)
    ner = nlp.get_pipe("ner_en")
    assert [ner.trains_on(eg) for eg in examples] == [True, True, False, False]
    # its word vocabulary holds only its corpus's words
    from spacy_lmcrf.ml.featurize.vocab import get_vocabularies

    words = get_vocabularies(ner.model.get_ref("tok2vec")).words
    assert "blackburn" in words and "merkel" not in words
    optimizer = Adam(0.01)
    nlp.update(examples, sgd=optimizer)
    before = _head_params(ner)
    assert nlp.update(examples[2:], sgd=optimizer)["ner_en"] == 0.0
    assert _same(before, _head_params(ner))
    docs = [nlp.make_doc("Peter Blackburn"), nlp.make_doc("Angela Merkel")]
    docs[1].user_data[CORPUS_KEY] = "es"
    docs[1].set_ents([Span(docs[1], 0, 2, label="PER")])
    docs = list(nlp.pipe(docs))
    assert [(e.start, e.end) for e in docs[1].ents] == [(0, 2)]  # left as it was
    assert "ner_en" in docs[0].spans and "ner_en" not in docs[1].spans


def test_corpus_restricted_head_trains_its_inline_language_model_on_its_corpus_only():
    """Its LM loss (a mean over the batch's words) is the same with the other corpus's
    docs in the batch as without them: they add nothing to the LM either."""
    nlp = spacy.blank("en")
    tok2vec = {"@architectures": "spacy_lmcrf.LMLSTMTok2Vec.v1", **TINY_TOK2VEC}
    nlp.add_pipe(
        "lm_crf_ner", name="ner_en", config={"corpus": "en", "model": {"tok2vec": tok2vec}}
    )
    examples = _two_corpora(ner_examples(nlp))
    nlp.initialize(lambda: examples)
    ner = nlp.get_pipe("ner_en")
    mixed = ner.update(examples)
    own = ner.update(examples[:2])
    assert mixed["ner_en_lm"] > 0
    assert mixed["ner_en_lm"] == pytest.approx(own["ner_en_lm"])
    assert mixed["ner_en"] == pytest.approx(own["ner_en"])
    assert "ner_en_lm" not in ner.update(examples[2:])
