"""TagLM (Peters et al. 2017): the bidirectional LM embeddings are the LMs' top-layer
states exactly, batched or not; the LMs stay fixed while the tagger trains; the three
places of Table 5 build and train; the tagger overfits, saves and loads without the LM file."""

import numpy
import pytest
import spacy
import torch
from spacy.tokens import Doc
from spacy.util import make_tempdir
from thinc.api import Adam

from spacy_lmcrf.ml.modules.word_lm import BiWordLM
from spacy_lmcrf.ml.modules.word_vocab import EOS

from ..util import chunk_examples, ner_examples, save_tiny_word_lm

PROJECTION = 6


@pytest.fixture(scope="module")
def lm_path(tmp_path_factory):
    return save_tiny_word_lm(tmp_path_factory.mktemp("wordlm") / "word_lm.msgpack", PROJECTION)


def bilm(lm_path, **settings):
    return {
        "@architectures": "spacy_lmcrf.BiLMEmbeddings.v1",
        "lm_path": str(lm_path),
        "output_size": PROJECTION,
        **settings,
    }


WORD = {"@architectures": "spacy_lmcrf.WordEmbedding.v1", "width": 8, "min_freq": 1}
CHAR_GRU = {"@architectures": "spacy_lmcrf.CharBiGRU.v1", "char_dim": 4, "hidden": 4, "depth": 1}
CHAR_CNN = {"@architectures": "spacy_lmcrf.CharCNN.v1", "char_dim": 4, "filters": 6, "dropout": 0.0}


def taglm(lm_path, lm_position="layer1", char_embed=CHAR_GRU, cell="gru", **settings):
    return {
        "@architectures": "spacy_lmcrf.TagLMTok2Vec.v1",
        "word_embed": WORD,
        "char_embed": char_embed,
        "bilm": bilm(lm_path) if lm_path else None,
        "cell": cell,
        "width": 12,
        "lm_position": lm_position,
        "input_dropout": 0.0,
        "output_dropout": 0.0,
        **settings,
    }


def embedder(lm_path, **settings):
    nlp = spacy.blank("en")
    model = spacy.util.registry.resolve({"m": bilm(lm_path, **settings)})["m"]
    model.initialize()
    return nlp, model


def rows(model, docs):
    return [numpy.asarray(x) for x in model.predict(docs)]


def test_lm_embeddings_are_the_top_layer_states(lm_path):
    nlp, model = embedder(lm_path)
    lms = BiWordLM.load(lm_path).eval()
    words = ["Peter", "Blackburn", "lives", "nowhere-known"]
    [out] = rows(model, [Doc(nlp.vocab, words=words)])
    ids = lms.vocab.encode(words)
    assert ids[-1] == 0, "an unknown word is <unk>"
    eos = lms.vocab.ids[EOS]
    with torch.no_grad():
        fwd, _ = lms.forward_lm(torch.tensor([[eos, *ids]]))
        bwd, _ = lms.backward_lm(torch.tensor([[eos, *ids[::-1]]]))
    expected = torch.cat([fwd[0, 1:], bwd[0, 1:].flip(0)], dim=-1).numpy()
    assert out.shape == (4, 2 * PROJECTION)
    numpy.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)


def test_batched_equals_unbatched_and_sentences_are_read_separately(lm_path):
    nlp, model = embedder(lm_path, group_size=2)
    texts = [
        "Prices rose",
        "EU rejects German call to boycott British lamb .",
        "",
        "ham " * 40,
        "I",
    ]
    docs = [Doc(nlp.vocab, words=t.split()) for t in texts]
    for batched, alone in zip(rows(model, docs), [rows(model, [doc])[0] for doc in docs]):
        numpy.testing.assert_allclose(batched, alone, rtol=1e-5, atol=1e-6)
    assert rows(model, docs)[2].shape == (0, 2 * PROJECTION)
    words = "Peter lives here . He left".split()
    doc = Doc(nlp.vocab, words=words, sent_starts=[True, False, False, False, True, False])
    [whole] = rows(model, [doc])
    [second] = rows(model, [Doc(nlp.vocab, words=words[4:])])
    numpy.testing.assert_allclose(whole[4:], second, rtol=1e-5, atol=1e-6)


def test_missing_file_wrong_size_and_uninitialized(lm_path, tmp_path):
    nlp = spacy.blank("en")
    missing = spacy.util.registry.resolve({"m": bilm(tmp_path / "nothing.msgpack")})["m"]
    with pytest.raises(FileNotFoundError, match="nothing.msgpack"):
        missing.initialize()
    wrong = spacy.util.registry.resolve({"m": bilm(lm_path, output_size=PROJECTION + 1)})["m"]
    with pytest.raises(ValueError, match=f"set output_size = {PROJECTION}"):
        wrong.initialize()
    never = spacy.util.registry.resolve({"m": bilm(lm_path)})["m"]
    with pytest.raises(ValueError, match="initialize"):
        never.predict([Doc(nlp.vocab, words=["a"])])


def _ents(docs):
    return [[(e.start, e.end, e.label_) for e in doc.ents] for doc in docs]


def _bilm_module(nlp, name="lm_crf_ner"):
    node = next(n for n in nlp.get_pipe(name).model.walk() if n.name == "bilm_embeddings")
    return node.get_ref("lms").shims[0]._model


def _encoder(nlp, name="lm_crf_ner"):
    node = next(n for n in nlp.get_pipe(name).model.walk() if n.name == "taglm_tok2vec")
    return node.get_ref("encoder").shims[0]._model


@pytest.mark.slow
@pytest.mark.parametrize("position", ["input", "layer1", "layer2"])
def test_each_injection_point_builds_and_trains_with_the_lms_fixed(lm_path, position):
    nlp = spacy.blank("en")
    nlp.add_pipe("lm_crf_ner", config={"model": {"tok2vec": taglm(lm_path, position)}})
    examples = ner_examples(nlp)
    nlp.initialize(lambda: examples)
    encoder = _encoder(nlp)
    lm_width = 2 * PROJECTION
    features = 8 + 8  # word embedding + character bi-GRU
    assert encoder.first_layer.n_in == features + (lm_width if position == "input" else 0)
    assert encoder.second_layer.n_in == 12 + (lm_width if position == "layer1" else 0)
    assert nlp.get_pipe("lm_crf_ner").model.get_ref("tok2vec").get_dim("nO") == 12 + (
        lm_width if position == "layer2" else 0
    )
    lms = _bilm_module(nlp)
    before = {k: v.clone() for k, v in lms.state_dict().items()}
    optimizer = Adam(0.02)
    first = nlp.update(examples, sgd=optimizer)["lm_crf_ner"]
    for _ in range(10):
        last = nlp.update(examples, sgd=optimizer)["lm_crf_ner"]
    assert last < first
    assert all(torch.equal(before[k], v) for k, v in lms.state_dict().items()), "the LMs are fixed"
    assert not any(p.requires_grad for p in lms.parameters())


def test_the_lm_embeddings_reach_the_tagger(lm_path):
    """With the LMs' states changed, the tagger's output changes: h_LM is really read."""
    nlp = spacy.blank("en")
    nlp.add_pipe("lm_crf_ner", config={"model": {"tok2vec": taglm(lm_path, "layer1")}})
    examples = ner_examples(nlp)
    nlp.initialize(lambda: examples)
    tok2vec = nlp.get_pipe("lm_crf_ner").model.get_ref("tok2vec")
    docs = [eg.predicted for eg in examples]
    before = numpy.concatenate(tok2vec.predict(docs))
    with torch.no_grad():
        _bilm_module(nlp).forward_lm.embed.weight.mul_(3.0)
    assert not numpy.allclose(before, numpy.concatenate(tok2vec.predict(docs)))


@pytest.mark.slow
def test_overfitting_IO(lm_path, tmp_path):
    """TagLM for NER (character bi-GRU, GRU layers); the LM file is not needed to load."""
    nlp = spacy.blank("en")
    nlp.add_pipe("lm_crf_ner", config={"model": {"tok2vec": taglm(lm_path)}})
    examples = ner_examples(nlp)
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.02)
    for _ in range(60):
        losses = nlp.update(examples, sgd=optimizer)
    assert losses["lm_crf_ner"] < 0.5
    texts = [eg.reference.text for eg in examples]
    predicted = _ents(nlp.pipe(texts))
    assert predicted == _ents(eg.reference for eg in examples)
    with make_tempdir() as tmp:
        nlp.to_disk(tmp)
        moved = tmp_path / "moved.msgpack"
        lm_path.rename(moved)
        try:
            loaded = spacy.load(tmp)
            assert _ents(loaded.pipe(texts)) == predicted
            assert torch.equal(
                _bilm_module(loaded).backward_lm.lstm.weight_hr_l0,
                _bilm_module(nlp).backward_lm.lstm.weight_hr_l0,
            )
        finally:
            moved.rename(lm_path)


@pytest.mark.slow
def test_chunker_with_cnn_characters_lstm_layers_and_no_lm():
    """The paper's chunking tagger shape (character CNN, LSTM layers), as the baseline
    without LM (bilm = None): overfits and round-trips."""
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "lm_crf_spans",
        config={
            "spans_key": "chunks",
            "model": {"tok2vec": taglm(None, char_embed=CHAR_CNN, cell="lstm", output_dropout=0.0)},
        },
    )
    examples = chunk_examples(nlp)
    nlp.initialize(lambda: examples)
    assert not any(n.name == "bilm_embeddings" for n in nlp.get_pipe("lm_crf_spans").model.walk())
    optimizer = Adam(0.02)
    for _ in range(60):
        losses = nlp.update(examples, sgd=optimizer)
    assert losses["lm_crf_spans"] < 0.5
    texts = [eg.reference.text for eg in examples]

    def spans(docs):
        return [[(s.start, s.end, s.label_) for s in doc.spans["chunks"]] for doc in docs]

    predicted = spans(nlp.pipe(texts))
    assert predicted == spans(eg.reference for eg in examples)
    with make_tempdir() as tmp:
        nlp.to_disk(tmp)
        assert spans(spacy.load(tmp).pipe(texts)) == predicted


def test_bad_settings_are_errors(lm_path):
    with pytest.raises(ValueError, match="lm_position must be one of"):
        spacy.util.registry.resolve({"m": taglm(lm_path, "layer3")})
    with pytest.raises(ValueError, match="cell must be one of"):
        spacy.util.registry.resolve({"m": taglm(lm_path, cell="rnn")})
