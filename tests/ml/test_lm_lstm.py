"""The LM-LSTM-CRF encoder: character-stream alignment, vocabularies, vectors, LM training."""

import numpy
import pytest
import spacy
from spacy.tokens import Doc
from spacy.util import make_tempdir
from spacy.vectors import Vectors

from spacy_lmcrf.ml.featurize.char_stream import (
    CHAR_SEP,
    CHAR_UNK,
    LM_IGNORE,
    LM_UNK,
    WORD_UNK,
    Vocabularies,
    featurize,
)
from spacy_lmcrf.ml.models.lm_lstm_tok2vec import get_vocabularies

from ..util import make_nlp, ner_examples, train


def test_character_stream_alignment():
    """'Pierre Vinken' -> <s> P i e r r e <s> V i n k e n <s>: the forward state after a
    word is read at the separator after it; the backward state at the separator before
    it (in the reversed stream); the LMs predict word i from the separator before it
    (forward) and after it (backward)."""
    vocab = Vocabularies(list("PVeiknr"), ["pierre"], ["pierre"], lowercase=True)
    doc = Doc(spacy.blank("en").vocab, words=["Pierre", "Vinken"])
    batch = featurize([doc], vocab, max_length=128, with_lm_targets=True)
    stream = batch.char_ids[0]
    assert len(stream) == 1 + 6 + 1 + 6 + 1
    assert [i for i, c in enumerate(stream) if c == CHAR_SEP] == [0, 7, 14]
    assert batch.fwd_after[0].tolist() == [7, 14]
    assert batch.fwd_before[0].tolist() == [0, 7]
    C = len(stream)
    assert batch.bwd_before[0].tolist() == [C - 1 - 0, C - 1 - 7]
    assert batch.bwd_after[0].tolist() == [C - 1 - 7, C - 1 - 14]
    assert batch.char_ids_rev[0].tolist() == stream[::-1].tolist()
    # at "the separator before Vinken" the backward LSTM has read <s> n e k n i V <s>
    rev = batch.char_ids_rev[0]
    read = rev[: batch.bwd_before[0][1] + 1].tolist()
    assert read == [CHAR_SEP] + vocab.chars_of("Vinken")[::-1].tolist() + [CHAR_SEP]
    assert batch.word_ids[0].tolist() == [vocab.word_ids["pierre"], WORD_UNK]
    assert batch.lm_targets[0].tolist() == [vocab.lm_ids["pierre"], LM_UNK]


def test_featurize_padding_unknown_chars_and_windows():
    vocab = Vocabularies(list("ab"), [], [], lowercase=False)
    nlp = spacy.blank("en")
    docs = [
        Doc(nlp.vocab, words=["ab", "z"]),
        Doc(nlp.vocab, words=[]),
        Doc(nlp.vocab, words=["a"] * 5),
    ]
    batch = featurize(docs, vocab, max_length=2, with_lm_targets=True)
    assert batch.segments == [(0, 0, 2), (2, 0, 2), (2, 2, 4), (2, 4, 5)]
    assert batch.lengths.tolist() == [2, 2, 2, 1]
    assert CHAR_UNK in batch.char_ids[0].tolist()  # "z" was never seen
    assert batch.lm_targets[3].tolist() == [LM_UNK, LM_IGNORE]
    assert batch.char_lengths.tolist() == [len("ab") + len("z") + 3, 5, 5, 3]


def test_sentences_are_segments():
    nlp = spacy.blank("en")
    doc = Doc(
        nlp.vocab, words=["a", "b", "c", "d", "e"], sent_starts=[True, False, True, False, False]
    )
    vocab = Vocabularies(list("abcde"), [], [], lowercase=False)
    batch = featurize([doc], vocab, max_length=128, with_lm_targets=False)
    assert batch.segments == [(0, 0, 2), (0, 2, 5)]


def test_vocabularies_min_freq_and_pretrained():
    nlp = spacy.blank("en")
    docs = [
        Doc(nlp.vocab, words=["The", "the", "cat", "sat"]),
        Doc(nlp.vocab, words=["the", "Dog"]),
    ]
    vocab = Vocabularies.from_docs(
        docs, min_freq=2, lowercase=True, pretrained_words=["dog", "zebra"]
    )
    assert vocab.lm_words == ["the"]
    assert vocab.words == ["the", "dog", "zebra"]
    assert "cat" not in vocab.word_ids  # rare and without a vector -> unknown row


def _nlp_with_vectors():
    nlp = make_nlp("lm_crf_ner", tok2vec={"word_dim": None})
    rng = numpy.random.default_rng(0)
    words = ["peter", "berlin", "eu", "german", "paris"]
    data = rng.normal(size=(len(words), 6)).astype("float32")
    nlp.vocab.vectors = Vectors(strings=nlp.vocab.strings, data=data, keys=words)
    return nlp, dict(zip(words, data))


def test_lowercased_vectors_survive_save_and_load():
    """Capitalised words find their lowercase GloVe rows, also after spacy.load (spaCy itself
    forgets `init vectors --attr LOWER` when it saves a pipeline)."""
    nlp, vectors = _nlp_with_vectors()
    examples = ner_examples(nlp)
    nlp.initialize(lambda: examples)
    tok2vec = nlp.get_pipe("lm_crf_ner").model.get_ref("tok2vec")
    table = tok2vec.get_ref("encoder").shims[0]._model.word_embed.weight.detach().numpy()
    vocab = get_vocabularies(tok2vec)
    for word in ("Berlin", "Paris", "PETER"):
        row = vocab.word_ids[vocab.normalize(word)]
        numpy.testing.assert_array_equal(table[row], vectors[word.lower()])
    assert "paris" in vocab.word_ids  # a vector but never in training: still its own row
    with make_tempdir() as tmp:
        nlp.to_disk(tmp)
        nlp2 = spacy.load(tmp)
    tok2vec2 = nlp2.get_pipe("lm_crf_ner").model.get_ref("tok2vec")
    table2 = tok2vec2.get_ref("encoder").shims[0]._model.word_embed.weight.detach().numpy()
    vocab2 = get_vocabularies(tok2vec2)
    for word in ("Berlin", "Paris", "PETER"):
        numpy.testing.assert_array_equal(
            table2[vocab2.word_ids[vocab2.normalize(word)]], vectors[word.lower()]
        )


def test_word_dim_mismatch_is_a_clear_error():
    nlp, _ = _nlp_with_vectors()
    nlp.replace_pipe(
        "lm_crf_ner", "lm_crf_ner", config={"model": {"tok2vec": {"word_dim": 7, "min_freq": 1}}}
    )
    with pytest.raises(ValueError, match="word_dim=7.*width 6"):
        nlp.initialize(lambda: ner_examples(nlp))


def test_uninitialized_tok2vec_is_a_clear_error():
    nlp = make_nlp("lm_crf_ner")
    with pytest.raises(ValueError, match="initialize"):
        nlp("Peter lives in Berlin")


def test_lm_gradient_reaches_the_character_lstm():
    """With lambda > 0 the LM loss alone moves the character LSTMs and the LM decoders;
    with lambda = 0 the decoders don't exist."""
    nlp = make_nlp("lm_crf_ner")
    examples = ner_examples(nlp)
    nlp.initialize(lambda: examples)
    tok2vec = nlp.get_pipe("lm_crf_ner").model.get_ref("tok2vec")
    module = tok2vec.get_ref("encoder").shims[0]._model
    outputs, backprop = tok2vec([eg.predicted for eg in examples], is_train=True)
    assert tok2vec.attrs["last_lm_loss"] > 0
    backprop([numpy.zeros_like(o) for o in outputs])  # no labeler gradient at all
    assert module.char_lm.fwd_decoder.weight.grad.abs().sum() > 0
    assert module.char_lm.fwd_lstm.weight_hh_l0.grad.abs().sum() > 0
    assert module.char_lm.bwd_lstm.weight_hh_l0.grad.abs().sum() > 0
    nl = make_nlp("lm_crf_ner", tok2vec={"lm_weight": 0.0})
    nl.initialize(lambda: ner_examples(nl))
    assert (
        nl.get_pipe("lm_crf_ner")
        .model.get_ref("tok2vec")
        .get_ref("encoder")
        .shims[0]
        ._model.char_lm.fwd_decoder
        is None
    )


def test_training_is_batch_composition_independent_at_inference():
    nlp = make_nlp("lm_crf_ner")
    train(nlp, ner_examples(nlp), 10)
    texts = [
        "Peter Blackburn lives in Berlin .",
        "EU",
        "Angela Merkel met Emmanuel Macron in Paris",
    ] * 3
    tok2vec = nlp.get_pipe("lm_crf_ner").model.get_ref("tok2vec")
    docs = [nlp.make_doc(t) for t in texts]
    together = tok2vec.predict(docs)
    for doc, row in zip(docs, together):
        numpy.testing.assert_allclose(tok2vec.predict([doc])[0], row, rtol=1e-4, atol=1e-5)
