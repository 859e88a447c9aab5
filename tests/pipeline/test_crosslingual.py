"""Cross-lingual joint training (Yang et al. 2016, Figure 2b): two NER heads, one per
language, share only a character encoder (spacy_lmcrf.CharTok2Vec.v1 in the tok2vec
component); each has its own word embeddings, word bi-GRU and CRF, and learns from and
annotates only its language's docs. A single-language pipeline extracted from the joint
one predicts what the joint one predicts on that language."""

import pytest
import spacy
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Adam

from spacy_lmcrf.extract import extract
from spacy_lmcrf.ml.featurize.vocab import get_vocabularies
from spacy_lmcrf.training.corpus import CORPUS_KEY

from ..util import ROOT

CHAR_TOK2VEC = {
    "@architectures": "spacy_lmcrf.CharTok2Vec.v1",
    "char_embed": {
        "@architectures": "spacy_lmcrf.CharBiGRU.v1",
        "char_dim": 6,
        "hidden": 6,
        "max_word_length": 20,
    },
}


def _head(corpus, word_width):
    return {
        "corpus": corpus,
        "model": {
            "pairwise": "small",
            "tok2vec": {
                "@architectures": "spacy_lmcrf.WordFeaturesTok2Vec.v1",
                "features": {
                    "@architectures": "spacy.Tok2VecListener.v1",
                    "width": 12,
                    "upstream": "tok2vec",
                },
                "word_embed": {
                    "@architectures": "spacy_lmcrf.WordEmbedding.v1",
                    "width": word_width,
                    "min_freq": 1,
                },
                "encoder": {
                    "@architectures": "spacy_lmcrf.BiGRUEncoder.v1",
                    "width": 8,
                    "depth": 1,
                },
                "use_vectors": corpus == "en",
            },
        },
    }


DATA = {
    "en": [
        ("Peter Blackburn lives in Berlin .", ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]),
        ("The EU met in Paris", ["O", "B-ORG", "O", "O", "B-LOC"]),
    ],
    "es": [
        ("Ñoño vive en Madrid .", ["B-PER", "O", "O", "B-LOC", "O"]),
        ("La ONU habló en París", ["O", "B-ORG", "O", "O", "B-LOC"]),
    ],
}


def _examples(nlp):
    examples = []
    for lang, rows in DATA.items():
        for text, tags in rows:
            words = text.split()
            pred, ref = Doc(nlp.vocab, words=words), Doc(nlp.vocab, words=words, ents=tags)
            pred.user_data[CORPUS_KEY] = ref.user_data[CORPUS_KEY] = lang
            examples.append(Example(pred, ref))
    return examples


def _nlp():
    nlp = spacy.blank("en")
    nlp.add_pipe("tok2vec", config={"model": CHAR_TOK2VEC})
    nlp.add_pipe("lm_crf_ner", name="ner_en", config=_head("en", 8))
    nlp.add_pipe("lm_crf_ner", name="ner_es", config=_head("es", 6))
    return nlp


def _ents(docs):
    return [[(e.start, e.end, e.label_) for e in d.ents] for d in docs]


def _step(nlp, batch, optimizer):
    losses = nlp.update(batch, sgd=False)
    for _, proc in nlp.pipeline:
        proc.finish_update(optimizer)
    return losses


@pytest.mark.slow
def test_crosslingual_shares_only_characters_and_extracts_single_language_pipelines(tmp_path):
    nlp = _nlp()
    examples = _examples(nlp)
    nlp.initialize(lambda: examples)
    chars = get_vocabularies(nlp.get_pipe("tok2vec").model).chars
    assert "Ñ" in chars and "B" in chars  # the union of both languages' characters
    en_words = get_vocabularies(nlp.get_pipe("ner_en").model.get_ref("tok2vec")).words
    es_words = get_vocabularies(nlp.get_pipe("ner_es").model.get_ref("tok2vec")).words
    assert "berlin" in en_words and "madrid" not in en_words and "madrid" in es_words
    char_module = nlp.get_pipe("tok2vec").model.get_ref("encoder").shims[0]._model
    shared = char_module.char_embed.rnn.weight_hh_l0
    optimizer = Adam(0.01)
    en_batch, es_batch = examples[:2], examples[2:]
    for batch, trained, idle in ((en_batch, "ner_en", "ner_es"), (es_batch, "ner_es", "ner_en")):
        idle_module = nlp.get_pipe(idle).model.get_ref("tok2vec").get_ref("encoder").shims[0]._model
        idle_before = [p.detach().clone() for p in idle_module.parameters()]
        losses = nlp.update(batch, sgd=False)
        assert losses[trained] > 0 and losses[idle] == 0.0
        assert (
            shared.grad is not None and float(shared.grad.abs().sum()) > 0
        )  # this language reached it
        for _, proc in nlp.pipeline:
            proc.finish_update(optimizer)
        assert all(p.detach().equal(b) for p, b in zip(idle_module.parameters(), idle_before))
    for _ in range(80):
        _step(nlp, en_batch, optimizer)
        _step(nlp, es_batch, optimizer)
    docs = []
    for lang, rows in DATA.items():
        for text, _ in rows:
            doc = nlp.make_doc(text)
            doc.user_data[CORPUS_KEY] = lang
            docs.append(doc)
    docs = list(nlp.pipe(docs))
    assert _ents(docs) == _ents(eg.reference for eg in examples)
    nlp.to_disk(tmp_path / "joint")
    joint = spacy.load(tmp_path / "joint")
    for lang, head, start in (("es", "ner_es", 2), ("en", "ner_en", 0)):
        single = extract(joint, [head], lang=lang, name="ner")
        assert single.pipe_names == ["tok2vec", "ner"] and single.lang == lang
        single.to_disk(tmp_path / lang)
        reloaded = spacy.load(tmp_path / lang)
        texts = [text for text, _ in DATA[lang]]
        assert _ents(reloaded.pipe(texts)) == _ents(docs[start : start + 2])


def test_crosslingual_config_is_valid_and_trains(tmp_path):
    from spacy.cli.debug_config import debug_config
    from spacy.tokens import DocBin
    from spacy.training.initialize import init_nlp
    from spacy.util import load_config, resolve_dot_names

    path = ROOT / "configs" / "yang_crosslingual_ner.cfg"
    nlp = spacy.blank("en")
    overrides = {}
    for lang, rows in DATA.items():
        docs = [Doc(nlp.vocab, words=text.split(), ents=tags) for text, tags in rows]
        DocBin(docs=docs).to_disk(tmp_path / f"{lang}.spacy")
        overrides[f"paths.{lang}_train"] = overrides[f"paths.{lang}_dev"] = str(
            tmp_path / f"{lang}.spacy"
        )
        overrides[f"components.ner_{lang}.model.tok2vec.encoder.width"] = 8
        overrides[f"components.ner_{lang}.model.tok2vec.features.width"] = 8
    overrides["components.ner_en.model.tok2vec.word_embed.width"] = 8
    overrides["components.tok2vec.model.char_embed.hidden"] = 4
    debug_config(path, overrides=overrides)
    nlp = init_nlp(load_config(path, overrides=overrides))
    optimizer, corpus, batcher = resolve_dot_names(
        nlp.config.interpolate(), ["training.optimizer", "corpora.train", "training.batcher"]
    )
    batches = list(batcher(list(corpus(nlp))))
    assert [{eg.reference.user_data[CORPUS_KEY] for eg in b} for b in batches] == [{"en"}, {"es"}]
    first = [_step(nlp, b, optimizer) for b in batches]
    for _ in range(3):
        last = [_step(nlp, b, optimizer) for b in batches]
    assert 0 < last[0]["ner_en"] < first[0]["ner_en"] and 0 < last[1]["ner_es"] < first[1]["ner_es"]
    assert last[0]["ner_es"] == 0.0 and last[1]["ner_en"] == 0.0
