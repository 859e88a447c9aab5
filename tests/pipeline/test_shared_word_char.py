"""A tok2vec composed of the baselines' parts, shared by lm_crf_ner and lm_crf_tagger
through spaCy's tok2vec component and listeners."""

import pytest
import spacy
from spacy.util import make_tempdir
from thinc.api import Adam

from spacy_lmcrf.ml.featurize.vocab import get_vocabularies

from ..util import tagged_ner_examples

TOK2VEC = {
    "@architectures": "spacy_lmcrf.WordCharTok2Vec.v1",
    "word_embed": {"@architectures": "spacy_lmcrf.WordEmbedding.v1", "width": 16, "min_freq": 1},
    "char_embed": {
        "@architectures": "spacy_lmcrf.CharCNN.v1",
        "char_dim": 8,
        "filters": 8,
        "dropout": 0.0,
    },
    "encoder": {
        "@architectures": "spacy_lmcrf.BiLSTMEncoder.v1",
        "width": 16,
        "input_dropout": 0.0,
        "output_dropout": 0.0,
    },
}
LISTENER = {"@architectures": "spacy.Tok2VecListener.v1", "width": 16, "upstream": "*"}


def _ents(docs):
    return [[(e.start, e.end, e.label_) for e in doc.ents] for doc in docs]


@pytest.mark.slow
def test_shared_word_char_tok2vec_trains_both_heads_and_sees_all_docs():
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec", config={"model": TOK2VEC})
    for factory in ("lm_crf_ner", "lm_crf_tagger"):
        nlp.add_pipe(factory, config={"model": {"pairwise": "small", "tok2vec": LISTENER}})
    examples = tagged_ner_examples(nlp)
    assert len(examples) > 10
    nlp.initialize(lambda: examples)
    tok2vec = nlp.get_pipe("tok2vec").model
    # spaCy's tok2vec component saw ten docs; the listening components added the rest
    assert "w3" in get_vocabularies(tok2vec).words  # first seen in doc 13
    module = tok2vec.get_ref("encoder").shims[0]._model
    conv_before = module.char_embed.conv.weight.detach().clone()
    optimizer = Adam(0.01)
    for _ in range(100):
        losses = nlp.update(examples, sgd=optimizer)
    assert losses["lm_crf_ner"] < 0.2 and losses["lm_crf_tagger"] < 0.2
    assert not module.char_embed.conv.weight.detach().equal(conv_before)
    texts = [eg.reference.text for eg in examples[:4]]
    docs = list(nlp.pipe(texts))
    assert _ents(docs) == _ents(eg.reference for eg in examples[:4])
    assert [[t.tag_ for t in d] for d in docs] == [
        [t.tag_ for t in eg.reference] for eg in examples[:4]
    ]
    with make_tempdir() as tmp:
        nlp.to_disk(tmp)
        docs2 = list(spacy.load(tmp).pipe(texts))
    assert _ents(docs2) == _ents(docs)
    assert [[t.tag_ for t in d] for d in docs2] == [[t.tag_ for t in d] for d in docs]
