"""A batch run in pieces (pipeline/update_pieces.py) gives the losses and gradients of the
batch run whole, and every token is in exactly one piece."""

import pytest
import spacy
import torch
from spacy.tokens import Doc, Span
from spacy.training import Example

import spacy_lmcrf.pipeline.update_pieces as pieces_module
from spacy_lmcrf.pipeline.update_pieces import common_segment_starts, cut_points, update_pieces

from ..util import TINY_TOK2VEC, make_nlp, ner_examples, train

WORDS = "Peter Blackburn lives in Berlin and EU rejects German call to boycott British lamb".split()


def long_example(nlp, n_tokens: int) -> Example:
    words = [WORDS[i % len(WORDS)] for i in range(n_tokens)]
    reference = Doc(nlp.vocab, words=words)
    reference.set_ents(
        [
            Span(reference, i, i + 2, label="PER")
            for i in range(0, n_tokens - 1, len(WORDS))
            if i + 2 <= n_tokens
        ],
        default="outside",
    )
    return Example(Doc(nlp.vocab, words=words), reference)


def test_cut_points_keep_pieces_within_bounds():
    assert cut_points([0, 128, 256, 384, 400], 300) == [0, 256, 400]
    # a segment longer than max_tokens stays whole
    assert cut_points([0, 500, 600], 100) == [0, 500, 600]


def test_common_segment_starts_are_starts_of_every_layer():
    doc = Doc(spacy.blank("en").vocab, words=["w"] * 100)
    assert common_segment_starts(doc, [16, 24]) == [0, 48, 96, 100]


def test_every_token_once_and_small_batches_untouched():
    vocab = spacy.blank("en").vocab
    docs = [Doc(vocab, words=["w"] * n) for n in (5, 1000, 7, 300)]
    gold = [list(range(len(doc))) for doc in docs]
    assert update_pieces(docs[:1], gold[:1], [128], 100)[0][0][0] is docs[0]
    pieces = update_pieces(docs, gold, [128], 300)
    assert all(sum(len(doc) for doc in piece_docs) <= 300 for piece_docs, _ in pieces)
    assert [i for _, ids in pieces for doc_ids in ids for i in doc_ids] == [
        i for ids in gold for i in ids
    ]


def grads(nlp):
    out = {}
    for node in nlp.get_pipe("lm_crf_ner").model.walk():
        for shim in node.shims:
            for name, param in shim._model.named_parameters():
                if param.grad is not None:
                    out[f"{node.id}.{name}"] = param.grad.clone()
                    param.grad.zero_()
    return out


@pytest.mark.parametrize("lm_weight", [1.0, 0.0])
def test_pieces_give_the_whole_batch_loss_and_gradients(monkeypatch, lm_weight):
    tok2vec = {**TINY_TOK2VEC, "max_length": 16, "lm_weight": lm_weight}
    nlp = make_nlp("lm_crf_ner", config={"model": {"max_length": 8, "tok2vec": tok2vec}})
    train(nlp, ner_examples(nlp), 3)
    batch = [long_example(nlp, 150), *ner_examples(nlp)]
    grads(nlp)
    ner = nlp.get_pipe("lm_crf_ner")
    whole = ner.update(batch, sgd=None, losses={})
    whole_grads = grads(nlp)
    monkeypatch.setattr(pieces_module, "MAX_PIECE_TOKENS", 40)
    in_pieces = ner.update(batch, sgd=None, losses={})
    piece_grads = grads(nlp)
    assert len(update_pieces([eg.predicted for eg in batch], [[0] * 150] + [[]] * 3, [8, 16])) > 3
    assert in_pieces.keys() == whole.keys()
    for key in whole:
        assert in_pieces[key] == pytest.approx(whole[key], rel=1e-5)
    assert piece_grads.keys() == whole_grads.keys()
    for name, grad in whole_grads.items():
        torch.testing.assert_close(piece_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)
