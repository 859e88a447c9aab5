"""spacy_lmcrf.batch_by_length.v1: batches of a fixed size, of similar length, nothing lost."""

import random

import pytest
import spacy
from spacy.tokens import Doc
from spacy.training import Example
from spacy.util import registry

from spacy_lmcrf.training.batchers import create_length_batcher


def examples(n: int, seed: int = 0):
    nlp = spacy.blank("en")
    rng = random.Random(seed)
    out = []
    for i in range(n):
        words = [f"w{i}"] + ["x" * rng.randint(1, 9) for _ in range(rng.randint(0, 40))]
        doc = Doc(nlp.vocab, words=words)
        out.append(Example(doc, doc))
    return out


def test_registered():
    assert registry.batchers.get("spacy_lmcrf.batch_by_length.v1") is create_length_batcher


def test_every_example_once_in_batches_of_size():
    egs = examples(1234)
    batches = list(create_length_batcher(size=10, buffer=20)(egs))
    assert len(batches) == 124  # ceil(1234 / 10), as spacy.batch_by_sequence.v1 gives
    assert sorted(len(b) for b in batches)[1:] == [10] * 123
    seen = [id(eg) for batch in batches for eg in batch]
    assert sorted(seen) == sorted(id(eg) for eg in egs)


def test_batches_are_of_similar_length_and_in_random_order():
    egs = examples(2000)
    random.seed(0)
    batches = list(create_length_batcher(size=10, buffer=100)(egs))
    lengths = [[len(eg.predicted.text) for eg in batch] for batch in batches]
    padded = sum(len(b) * max(b) for b in lengths)
    assert padded / sum(sum(b) for b in lengths) < 1.05
    firsts = [b[0] for b in lengths[:100]]
    assert firsts != sorted(firsts)  # batches of a chunk are shuffled


def test_buffer_one_keeps_the_order():
    egs = examples(35)
    batches = list(create_length_batcher(size=10, buffer=1, get_length=lambda eg: 0)(egs))
    assert [eg for batch in batches for eg in batch] == egs


@pytest.mark.parametrize("size,buffer", [(0, 10), (10, 0)])
def test_bad_settings(size, buffer):
    with pytest.raises(ValueError, match="batch_by_length"):
        create_length_batcher(size=size, buffer=buffer)
