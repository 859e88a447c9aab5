"""The baselines' parts (word embeddings, character encoders, context encoders) composed
into tok2vecs: each trains under a CRF, saves and loads, and the parts do what their
papers say."""

import numpy
import pytest
import spacy
import torch
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import make_tempdir
from spacy.vectors import Vectors
from thinc.api import Adam, Model

from spacy_lmcrf.ml.featurize.char_stream import WORD_UNK, Vocabularies
from spacy_lmcrf.ml.featurize.vocab import extend_vocabularies, get_vocabularies
from spacy_lmcrf.ml.featurize.words import featurize_words
from spacy_lmcrf.ml.models.char_encoders import build_char_bigru, build_char_bilstm, build_char_cnn
from spacy_lmcrf.ml.models.word_embed import init_word_embeddings
from spacy_lmcrf.ml.modules.birnn import BiRNNEncoder
from spacy_lmcrf.ml.modules.locked_dropout import LockedDropout

from ..util import NER_DATA, ner_examples, tag_examples

N_STEPS = 100

WORD = {"@architectures": "spacy_lmcrf.WordEmbedding.v1", "width": 16, "min_freq": 1}
CHAR_BILSTM = {"@architectures": "spacy_lmcrf.CharBiLSTM.v1", "char_dim": 8, "hidden": 6}
CHAR_CNN = {"@architectures": "spacy_lmcrf.CharCNN.v1", "char_dim": 8, "filters": 8, "dropout": 0.0}
CHAR_BIGRU = {"@architectures": "spacy_lmcrf.CharBiGRU.v1", "char_dim": 8, "hidden": 6, "depth": 2}
NO_DROPOUT = {"input_dropout": 0.0, "output_dropout": 0.0}
BILSTM = {"@architectures": "spacy_lmcrf.BiLSTMEncoder.v1", "width": 16, **NO_DROPOUT}
BIGRU = {"@architectures": "spacy_lmcrf.BiGRUEncoder.v1", "width": 16, "depth": 2, **NO_DROPOUT}


def word_char(word=WORD, char=None, encoder=None):
    config = {
        "@architectures": "spacy_lmcrf.WordCharTok2Vec.v1",
        "word_embed": word,
        "max_length": 128,
    }
    if char is not None:
        config["char_embed"] = char
    if encoder is not None:
        config["encoder"] = encoder
    return config


HASH_EMBED = {
    "@architectures": "spacy.MultiHashEmbed.v2",
    "width": 16,
    "attrs": ["NORM", "PREFIX", "SUFFIX", "SHAPE"],
    "rows": [500, 200, 200, 50],
    "include_static_vectors": False,
}

TOK2VECS = [
    pytest.param(word_char(encoder=BILSTM), id="words+bilstm(Huang)"),
    pytest.param(word_char(char=CHAR_BILSTM, encoder=BILSTM), id="char-bilstm(Lample)"),
    pytest.param(word_char(char=CHAR_CNN, encoder=BILSTM), id="char-cnn(Ma&Hovy)"),
    pytest.param(
        word_char({**WORD, "zero_digits": True}, CHAR_BIGRU, BIGRU), id="char-bigru+bigru(Yang)"
    ),
    pytest.param(
        word_char(
            char=CHAR_BILSTM, encoder={**BILSTM, "locked_dropout": True, "input_dropout": 0.1}
        ),
        id="locked-dropout(Flair)",
    ),
    pytest.param(
        word_char({**WORD, "fine_tune": False}, CHAR_CNN), id="frozen-words+cnn,no-encoder"
    ),
    pytest.param(
        {"@architectures": "spacy_lmcrf.TorchEncoder.v1", "tok2vec": HASH_EMBED, "encoder": BIGRU},
        id="bigru-over-spacy-MultiHashEmbed",
    ),
    pytest.param(
        {
            "@architectures": "spacy.Tok2Vec.v2",
            "embed": word_char(char=CHAR_CNN),
            "encode": {
                "@architectures": "spacy.MaxoutWindowEncoder.v2",
                "width": 24,
                "window_size": 1,
                "maxout_pieces": 2,
                "depth": 1,
            },
        },
        id="spacy-maxout-over-words+cnn",
    ),
]


def _ents(docs):
    return [[(e.start, e.end, e.label_) for e in doc.ents] for doc in docs]


def _nlp(tok2vec, factory="lm_crf_ner"):
    nlp = spacy.blank("en")
    nlp.add_pipe(factory, config={"model": {"pairwise": "small", "tok2vec": tok2vec}})
    return nlp


def _train(nlp, examples, n_steps=N_STEPS):
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.01)
    for _ in range(n_steps):
        losses = nlp.update(examples, sgd=optimizer)
    return losses


@pytest.mark.slow
@pytest.mark.parametrize("tok2vec", TOK2VECS)
def test_overfitting_IO(tok2vec):
    nlp = _nlp(tok2vec)
    examples = ner_examples(nlp)
    losses = _train(nlp, examples)
    assert losses["lm_crf_ner"] < 0.1
    texts = [eg.reference.text for eg in examples]
    predicted = _ents(nlp.pipe(texts))
    assert predicted == _ents(eg.reference for eg in examples)
    with make_tempdir() as tmp:
        nlp.to_disk(tmp)
        assert _ents(spacy.load(tmp).pipe(texts)) == predicted
    nlp2 = _nlp(tok2vec)  # never initialized: the modules take their sizes from the saved state
    nlp2.from_bytes(nlp.to_bytes())
    assert _ents(nlp2.pipe(texts)) == predicted
    assert _ents(nlp(text) for text in texts) == predicted


@pytest.mark.slow
def test_tagger_with_char_bilstm():
    nlp = _nlp(word_char(char=CHAR_BILSTM, encoder=BILSTM), "lm_crf_tagger")
    examples = tag_examples(nlp)
    assert _train(nlp, examples)["lm_crf_tagger"] < 0.1
    docs = list(nlp.pipe([eg.reference.text for eg in examples]))
    assert [[t.tag_ for t in d] for d in docs] == [
        [t.tag_ for t in eg.reference] for eg in examples
    ]


def test_frozen_word_embeddings_do_not_move():
    nlp = _nlp(word_char({**WORD, "fine_tune": False}, CHAR_CNN, BILSTM))
    examples = ner_examples(nlp)
    nlp.initialize(lambda: examples)
    module = nlp.get_pipe("lm_crf_ner").model.get_ref("tok2vec").get_ref("encoder").shims[0]._model
    table = module.word_embed.table.weight.detach().clone()
    conv = module.char_embed.conv.weight.detach().clone()
    optimizer = Adam(0.01)
    for _ in range(3):
        nlp.update(examples, sgd=optimizer)
    assert module.word_embed.table.weight.equal(table)
    assert not module.char_embed.conv.weight.equal(conv)


def _nlp_with_vectors(word):
    nlp = _nlp(word_char({**WORD, "width": None, **word}, CHAR_CNN, BILSTM))
    rng = numpy.random.default_rng(0)
    words = ["peter", "berlin", "eu", "paris", "0000"]
    data = rng.normal(size=(len(words), 6)).astype("float32")
    for word in words:
        nlp.vocab.strings.add(word)
    nlp.vocab.vectors = Vectors(strings=nlp.vocab.strings, data=data, keys=words)
    return nlp, dict(zip(words, data))


def test_word_vocabulary_vectors_unknowns_and_normalisation():
    nlp, vectors = _nlp_with_vectors({"min_freq": 2, "zero_digits": True})
    examples = ner_examples(nlp)
    examples.append(Example.from_dict(nlp.make_doc("In 1996 and 2024 ."), {"entities": ["O"] * 5}))
    nlp.initialize(lambda: examples)
    tok2vec = nlp.get_pipe("lm_crf_ner").model.get_ref("tok2vec")
    vocab = get_vocabularies(tok2vec)
    table = tok2vec.get_ref("encoder").shims[0]._model.word_embed.table.weight.detach().numpy()
    assert table.shape == (vocab.n_words, 6)
    assert "paris" in vocab.word_ids  # has a vector, occurs once: its own row
    assert "." in vocab.word_ids  # occurs 3 times: its own row
    assert "lamb" not in vocab.word_ids  # once, no vector: the unknown row
    assert vocab.normalize("1996") == vocab.normalize("2024") == "0000"
    for word in ("Berlin", "PETER", "1996"):
        numpy.testing.assert_array_equal(
            table[vocab.word_ids[vocab.normalize(word)]], vectors[vocab.normalize(word)]
        )
    batch = featurize_words([nlp.make_doc("lamb in 2024")], vocab, max_length=128, with_chars=True)
    assert batch.word_ids[0, 0] == WORD_UNK
    assert (
        batch.char_ids[2].tolist() == vocab.chars_of("0000").tolist()
    )  # digits are 0 for the chars too
    with make_tempdir() as tmp:
        nlp.to_disk(tmp)
        nlp2 = spacy.load(tmp)
    tok2vec2 = nlp2.get_pipe("lm_crf_ner").model.get_ref("tok2vec")
    table2 = tok2vec2.get_ref("encoder").shims[0]._model.word_embed.table.weight.detach().numpy()
    vocab2 = get_vocabularies(tok2vec2)
    for word in ("Berlin", "PETER", "1996"):
        row = vocab2.word_ids[vocab2.normalize(word)]
        numpy.testing.assert_array_equal(table2[row], vectors[vocab.normalize(word)])


RAW_VECTOR_WORDS = ["Paris", "2001", "Berlin", "paris", "1990"]  # in the vectors' row order


def _init_raw_vector_table(lowercase, zero_digits):
    """A word table initialised from cased, numeric vectors, with the uniform values it
    starts from (the same seed) to compare the rows without a vector against."""
    nlp = spacy.blank("en")
    data = numpy.random.default_rng(0).normal(size=(len(RAW_VECTOR_WORDS), 4)).astype("float32")
    for word in RAW_VECTOR_WORDS:
        nlp.vocab.strings.add(word)
    nlp.vocab.vectors = Vectors(strings=nlp.vocab.strings, data=data, keys=RAW_VECTOR_WORDS)
    attrs = {
        "chars": [],
        "words": [],
        "lm_words": [],
        "lowercase": lowercase,
        "zero_digits": zero_digits,
        "min_freq": 1,
        "include_vectors": True,
    }
    model = Model("words", lambda model, X, is_train: (X, lambda dY: dY), attrs=attrs)
    vocab = extend_vocabularies(
        model, [nlp.make_doc("The lamb ate in 1995 .")], with_lm_words=False
    )
    table = torch.empty(vocab.n_words, 4)
    torch.manual_seed(0)
    init_word_embeddings(table, vocab, nlp.vocab)
    torch.manual_seed(0)
    uniform = torch.empty(vocab.n_words, 4).uniform_(-((3.0 / 4) ** 0.5), (3.0 / 4) ** 0.5)
    return vocab, table.numpy(), dict(zip(RAW_VECTOR_WORDS, data)), uniform.numpy()


def test_every_normalised_vector_word_takes_a_raw_words_vector():
    vocab, table, vectors, uniform = _init_raw_vector_table(lowercase=True, zero_digits=True)
    assert {"paris", "berlin", "0000"} <= set(vocab.words)
    assert not {"Paris", "Berlin", "1990", "2001"} & set(vocab.words)
    row = vocab.word_ids
    numpy.testing.assert_array_equal(
        table[row["paris"]], vectors["paris"]
    )  # the form itself, though later
    numpy.testing.assert_array_equal(table[row["berlin"]], vectors["Berlin"])
    numpy.testing.assert_array_equal(
        table[row["0000"]], vectors["2001"]
    )  # the first row, not the first sorted
    for word in ("the", "lamb", "ate", "in", "."):
        numpy.testing.assert_array_equal(table[row[word]], uniform[row[word]])
    numpy.testing.assert_array_equal(table[WORD_UNK], uniform[WORD_UNK])
    assert not table[0].any()


def test_unnormalised_vector_words_take_their_own_vectors():
    vocab, table, vectors, uniform = _init_raw_vector_table(lowercase=False, zero_digits=False)
    assert "berlin" not in vocab.word_ids and "0000" not in vocab.word_ids
    for word in RAW_VECTOR_WORDS:
        numpy.testing.assert_array_equal(table[vocab.word_ids[word]], vectors[word])
    for word in ("The", "lamb", "1995", "."):
        numpy.testing.assert_array_equal(table[vocab.word_ids[word]], uniform[vocab.word_ids[word]])


def test_width_mismatch_and_missing_width_are_clear_errors():
    nlp, _ = _nlp_with_vectors({"width": 7})
    with pytest.raises(ValueError, match="width=7.*width 6"):
        nlp.initialize(lambda: ner_examples(nlp))
    with pytest.raises(ValueError, match="word_embed.width"):
        _nlp(word_char({**WORD, "width": None}, CHAR_CNN))
    with pytest.raises(ValueError, match="initialize"):
        _nlp(word_char(encoder=BILSTM))("Peter lives in Berlin")


def test_inline_tok2vec_builds_its_vocabulary_from_all_docs():
    nlp = _nlp(word_char(char=CHAR_CNN, encoder=BILSTM))
    examples = []
    for i in range(4):
        for text, ents in NER_DATA:
            words = text.split() + [f"w{i}"]
            examples.append(
                Example(Doc(nlp.vocab, words=words), Doc(nlp.vocab, words=words, ents=ents + ["O"]))
            )
    nlp.initialize(lambda: examples)
    tok2vec = nlp.get_pipe("lm_crf_ner").model.get_ref("tok2vec")
    assert "w3" in get_vocabularies(tok2vec).words  # first seen in doc 13
    tok2vec.initialize(X=[Doc(nlp.vocab, words=["new", "Zürich"])])  # initializing again extends
    vocab = get_vocabularies(tok2vec)
    assert {"w3", "new", "zürich"} <= set(vocab.words) and "ü" in vocab.chars


def test_empty_docs_odd_text_and_long_words():
    nlp = _nlp(word_char(char={**CHAR_BIGRU, "max_word_length": 5}, encoder=BIGRU))
    _train(nlp, ner_examples(nlp), 2)
    docs = list(nlp.pipe(["", "Berlin " + "x" * 500, "", "😀 東京 a\tb"]))
    assert [len(d) for d in docs] == [0, 2, 0, len(nlp.make_doc("😀 東京 a\tb"))]
    assert list(nlp.pipe([])) == []
    vocab = get_vocabularies(nlp.get_pipe("lm_crf_ner").model.get_ref("tok2vec"))
    batch = featurize_words(
        [nlp.make_doc("Berlin xxxxxxxx")], vocab, max_length=1, with_chars=True, max_word_length=5
    )
    assert batch.segments == [(0, 0, 1), (0, 1, 2)]
    assert batch.char_lengths.tolist() == [5, 5]


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_birnn_equals_packed_bidirectional_rnn(cell):
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    encoder = BiRNNEncoder(cell, 8, depth=2, group_size=2)
    encoder.resize(5)
    reference = getattr(torch.nn, cell.upper())(
        5, 4, num_layers=2, batch_first=True, bidirectional=True
    )
    with torch.no_grad():
        for layer in range(2):
            for direction, rnn in (
                ("", encoder.forward_layers[layer]),
                ("_reverse", encoder.backward_layers[layer]),
            ):
                for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
                    getattr(reference, f"{name}_l{layer}{direction}").copy_(
                        getattr(rnn, f"{name}_l0")
                    )
    x = torch.randn(3, 6, 5)
    lengths = torch.tensor([6, 2, 4])
    ours = encoder(x, lengths)
    packed, _ = reference(pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False))
    theirs, _ = pad_packed_sequence(packed, batch_first=True, total_length=6)
    for b, n in enumerate(lengths.tolist()):
        torch.testing.assert_close(ours[b, :n], theirs[b, :n])


@pytest.mark.parametrize("build", [build_char_bilstm, build_char_bigru])
def test_char_birnn_reads_final_forward_and_first_backward_state(build):
    encoder = build(char_dim=4, hidden=3).eval()
    encoder.resize(10)
    words = [[3, 4, 5, 6], [7], [8, 9]]
    ids = torch.zeros((3, 4), dtype=torch.long)
    for i, w in enumerate(words):
        ids[i, : len(w)] = torch.tensor(w)
    out = encoder(ids, torch.tensor([len(w) for w in words]))
    for i, w in enumerate(words):
        states, _ = encoder.rnn(encoder.embed(torch.tensor([w])))  # the word alone, no padding
        torch.testing.assert_close(out[i, :3], states[0, -1, :3])  # forward, after the last char
        torch.testing.assert_close(out[i, 3:], states[0, 0, 3:])  # backward, after the first char


def test_char_cnn_is_independent_of_padding():
    encoder = build_char_cnn(char_dim=4, filters=5, dropout=0.0)
    encoder.resize(10)
    alone = encoder(torch.tensor([[3, 4]]), torch.tensor([2]))
    padded = encoder(torch.tensor([[3, 4, 0, 0, 0], [5, 6, 7, 8, 9]]), torch.tensor([2, 5]))
    torch.testing.assert_close(padded[0], alone[0])
    assert padded.shape == (2, 5) and bool((padded.abs() <= 1).all())


def test_locked_dropout_keeps_one_mask_per_sequence():
    dropout = LockedDropout(0.5)
    y = dropout(torch.ones(4, 7, 10))
    assert bool((y == y[:, :1]).all())  # the same features dropped at every step
    assert 0 < int((y[:, 0] == 0).sum()) < 40
    assert dropout.eval()(torch.ones(2, 3, 4)).equal(torch.ones(2, 3, 4))


def test_zero_digits_vocabulary_round_trips_through_attrs():
    vocab = Vocabularies(list("a0"), ["a0"], [], lowercase=True, zero_digits=True)
    again = Vocabularies.from_attrs(vocab.to_attrs())
    assert again.zero_digits and again.normalize("A7") == "a0"
    assert not Vocabularies.from_attrs({**vocab.to_attrs(), "zero_digits": False}).zero_digits
