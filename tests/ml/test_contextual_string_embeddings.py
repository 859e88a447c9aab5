"""Contextual string embeddings (Akbik et al. 2018): equation (8) exactly, for a batch at
once and in bounded chunks; stacked with word embeddings under the three heads of the
paper's Table 3; frozen by default; trains, saves and loads without the LM file."""

import numpy
import pytest
import spacy
import torch
from spacy.tokens import Doc
from spacy.util import make_tempdir
from thinc.api import Adam

from spacy_lmcrf.ml.crf import crf_loss, viterbi
from spacy_lmcrf.ml.modules.char_lm import BiCharLM
from spacy_lmcrf.ml.modules.crf_potentials import CRFPotentials

from ..util import ner_examples, save_tiny_char_lm, tag_examples

HIDDEN = 12


@pytest.fixture(scope="module")
def lm_path(tmp_path_factory):
    return save_tiny_char_lm(tmp_path_factory.mktemp("lm") / "char_lm.msgpack", HIDDEN)


def cse(lm_path, **settings):
    return {
        "@architectures": "spacy_lmcrf.ContextualStringEmbeddings.v1",
        "lm_path": str(lm_path),
        "hidden_size": HIDDEN,
        **settings,
    }


WORD = {"@architectures": "spacy_lmcrf.WordEmbedding.v1", "width": 8, "min_freq": 1}
WORDS = {"@architectures": "spacy_lmcrf.WordCharTok2Vec.v1", "word_embed": WORD}
WORDS_CHARS = {
    **WORDS,
    "char_embed": {"@architectures": "spacy_lmcrf.CharBiLSTM.v1", "char_dim": 4, "hidden": 4},
}
BILSTM = {
    "@architectures": "spacy_lmcrf.BiLSTMEncoder.v1",
    "width": 16,
    "input_dropout": 0.0,
    "output_dropout": 0.0,
    "locked_dropout": True,
}


def stacked(lm_path, *others, **settings):
    layers = {"*": {"cse": cse(lm_path, **settings)}}
    for i, other in enumerate(others):
        layers["*"][f"layer{i}"] = other
    return {"@architectures": "spacy_lmcrf.StackedEmbeddings.v1", **layers}


def bilstm_crf(lm_path, *others, **settings):
    return {
        "@architectures": "spacy_lmcrf.TorchEncoder.v1",
        "tok2vec": stacked(lm_path, *others, **settings),
        "encoder": BILSTM,
    }


def embedder(lm_path, **settings):
    nlp = spacy.blank("en")
    model = spacy.util.registry.resolve({"m": cse(lm_path, **settings)})["m"]
    model.initialize()
    return nlp, model


def rows(model, docs):
    return [numpy.asarray(x) for x in model.predict(docs)]


def test_equation_8_exactly(lm_path):
    nlp, model = embedder(lm_path)
    lms = BiCharLM.load(lm_path).eval()
    words = ["George", "Washington", "was", "born"]
    [out] = rows(model, [Doc(nlp.vocab, words=words)])
    text = "\n" + " ".join(words) + "\n"
    ids = torch.from_numpy(lms.vocab.encode(text))[None]
    with torch.no_grad():
        fwd, _ = lms.forward_lm(ids)
        bwd, _ = lms.backward_lm(ids.flip(1))
    starts = [1 + sum(len(w) + 1 for w in words[:i]) for i in range(len(words))]
    assert [text[s : s + len(w)] for s, w in zip(starts, words)] == words
    for i, (word, start) in enumerate(zip(words, starts)):
        last = start + len(word) - 1
        expected = torch.cat([fwd[0, last], bwd[0, len(text) - 1 - start]]).numpy()
        numpy.testing.assert_allclose(out[i], expected, rtol=1e-5, atol=1e-6)


def test_context_changes_the_embedding_and_same_context_does_not(lm_path):
    nlp, model = embedder(lm_path)
    docs = [
        Doc(nlp.vocab, words="Washington would also take action".split()),
        Doc(nlp.vocab, words="flown to Washington for talks".split()),
        Doc(nlp.vocab, words="Washington would also take action".split()),
    ]
    a, b, c = rows(model, docs)
    assert a.shape == (5, 2 * HIDDEN)
    assert not numpy.allclose(a[0], b[2], atol=1e-4)
    numpy.testing.assert_array_equal(a, c)


def test_batched_equals_unbatched_and_chunks_are_exact(lm_path):
    nlp, model = embedder(lm_path, group_size=2)
    _, chunked = embedder(lm_path, chunk_chars=5)
    texts = [
        "a",
        "EU rejects German call to boycott British lamb .",
        "Peter Blackburn",
        "",
        "x y z " * 30,
    ]
    docs = [Doc(nlp.vocab, words=t.split()) for t in texts]
    batched = rows(model, docs)
    one_by_one = [rows(model, [doc])[0] for doc in docs]
    for x, y, z in zip(batched, one_by_one, rows(chunked, docs)):
        numpy.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)
        numpy.testing.assert_allclose(x, z, rtol=1e-5, atol=1e-6)
    assert batched[3].shape == (0, 2 * HIDDEN)


def test_sentences_are_read_separately(lm_path):
    nlp, model = embedder(lm_path)
    words = "Peter lives here . He left".split()
    doc = Doc(nlp.vocab, words=words, sent_starts=[True, False, False, False, True, False])
    [whole] = rows(model, [doc])
    [second] = rows(model, [Doc(nlp.vocab, words=words[4:])])
    numpy.testing.assert_allclose(whole[4:], second, rtol=1e-5, atol=1e-6)


def test_unknown_characters_and_missing_file(lm_path, tmp_path):
    nlp, model = embedder(lm_path)
    [out] = rows(model, [Doc(nlp.vocab, words=["Ünïcode", "€"])])
    assert numpy.isfinite(out).all()
    bad = spacy.util.registry.resolve({"m": cse(tmp_path / "nothing.msgpack")})["m"]
    with pytest.raises(FileNotFoundError, match="nothing.msgpack"):
        bad.initialize()
    wrong = spacy.util.registry.resolve({"m": {**cse(lm_path), "hidden_size": HIDDEN + 1}})["m"]
    with pytest.raises(ValueError, match=f"set hidden_size = {HIDDEN}"):
        wrong.initialize()
    never = spacy.util.registry.resolve({"m": cse(lm_path)})["m"]
    with pytest.raises(ValueError, match="initialize"):
        never.predict([Doc(nlp.vocab, words=["a"])])


def _ents(docs):
    return [[(e.start, e.end, e.label_) for e in doc.ents] for doc in docs]


HEADS = [
    pytest.param("bilstm-crf", "small", id="BiLSTM-CRF"),
    pytest.param("map-crf", "small", id="Map-CRF"),
    pytest.param("map", "none", id="Map"),
]


def _tok2vec(lm_path, head, *others):
    return bilstm_crf(lm_path, *others) if head == "bilstm-crf" else stacked(lm_path, *others)


@pytest.mark.slow
@pytest.mark.parametrize("head,pairwise", HEADS)
def test_overfitting_IO(lm_path, tmp_path, head, pairwise):
    """PROPOSED+WORD under each head of Table 3; the LM file is not needed to load."""
    config = {"model": {"pairwise": pairwise, "tok2vec": _tok2vec(lm_path, head, WORDS)}}
    nlp = spacy.blank("en")
    nlp.add_pipe("lm_crf_ner", config=config)
    examples = ner_examples(nlp)
    nlp.initialize(lambda: examples)
    module = (
        next(
            node
            for node in nlp.get_pipe("lm_crf_ner").model.walk()
            if node.name == "contextual_string_embeddings"
        )
        .get_ref("lms")
        .shims[0]
        ._model
    )
    before = {k: v.clone() for k, v in module.state_dict().items()}
    optimizer = Adam(0.02)
    for _ in range(60):
        losses = nlp.update(examples, sgd=optimizer)
    assert losses["lm_crf_ner"] < 0.5
    assert all(torch.equal(before[k], v) for k, v in module.state_dict().items()), (
        "the LMs are frozen"
    )
    texts = [eg.reference.text for eg in examples]
    predicted = _ents(nlp.pipe(texts))
    assert predicted == _ents(eg.reference for eg in examples)
    with make_tempdir() as tmp:
        nlp.to_disk(tmp)
        moved = tmp_path / "moved.msgpack"
        lm_path.rename(moved)
        try:
            assert _ents(spacy.load(tmp).pipe(texts)) == predicted
        finally:
            moved.rename(lm_path)


@pytest.mark.slow
def test_stacked_with_task_trained_characters_tagger(lm_path):
    """PROPOSED+WORD+CHAR, as a POS tagger."""
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "lm_crf_tagger",
        config={"model": {"pairwise": "small", "tok2vec": bilstm_crf(lm_path, WORDS_CHARS)}},
    )
    examples = tag_examples(nlp)
    nlp.initialize(lambda: examples)
    optimizer = Adam(0.02)
    for _ in range(60):
        losses = nlp.update(examples, sgd=optimizer)
    assert losses["lm_crf_tagger"] < 0.5
    docs = list(nlp.pipe([eg.reference.text for eg in examples]))
    assert [[t.tag_ for t in d] for d in docs] == [
        [t.tag_ for t in eg.reference] for eg in examples
    ]


def test_fine_tuning_moves_the_lms(lm_path):
    nlp = spacy.blank("en")
    nlp.add_pipe(
        "lm_crf_ner",
        config={"model": {"pairwise": "small", "tok2vec": stacked(lm_path, WORDS, fine_tune=True)}},
    )
    examples = ner_examples(nlp)
    nlp.initialize(lambda: examples)
    module = (
        next(
            node
            for node in nlp.get_pipe("lm_crf_ner").model.walk()
            if node.name == "contextual_string_embeddings"
        )
        .get_ref("lms")
        .shims[0]
        ._model
    )
    before = module.forward_lm.lstm.weight_hh_l0.detach().clone()
    nlp.update(examples, sgd=Adam(0.01))
    assert not torch.equal(before, module.forward_lm.lstm.weight_hh_l0)


def test_map_head_is_a_per_token_softmax():
    torch.manual_seed(0)
    head = CRFPotentials(5, 4, pairwise="none")
    head.configure(4, allowed_transitions=numpy.eye(4, dtype=bool))  # ignored: no pairwise scores
    x = torch.randn(2, 3, 5)
    lengths = torch.tensor([3, 2])
    pots = head(x, lengths)
    gold = torch.tensor([[1, 2, 3], [0, 0, -1]])
    emissions = head.emit(x)
    expected = torch.stack(
        [
            -torch.log_softmax(emissions[0], -1)[[0, 1, 2], gold[0]].sum(),
            -torch.log_softmax(emissions[1, :2], -1)[[0, 1], gold[1, :2]].sum(),
        ]
    )
    torch.testing.assert_close(crf_loss(pots, lengths, gold), expected)
    paths, _ = viterbi(pots, lengths)
    best = emissions.argmax(-1)
    assert (
        paths[0].tolist()[:3] == best[0].tolist() and paths[1].tolist()[:2] == best[1, :2].tolist()
    )
