"""Span probabilities against brute-force enumeration of every tag sequence of small CRFs."""

import itertools
from functools import cache
from typing import Dict, List, Tuple

import numpy
import pytest
import spacy
import torch
from spacy.tokens import Doc

from spacy_lmcrf.ml.crf import chunk_log_prob, forward_backward
from spacy_lmcrf.ml.models.crf_tagger import CRFGroup, CRFScores, get_crf_module
from spacy_lmcrf.tags import (
    SCHEMES,
    allowed_transitions,
    chunk_boundaries,
    tag_names,
    tags_to_spans,
)

from ..util import TINY_TOK2VEC

LABELS = ("A", "B")
# two segments of one doc and a one-token doc: offsets, padding and both sequence ends
SEGMENTS = [(0, 0, 4), (0, 4, 7), (1, 0, 1)]
DOC_LENGTHS = [7, 1]
TOLERANCE = 1e-6

Chunk = Tuple[int, int, str]


pytestmark = pytest.mark.usefixtures("single_torch_thread")


@cache
def _sequences(
    scheme: str, length: int, constrained: bool, outside: Tuple[int, ...] = ()
) -> List[Tuple[numpy.ndarray, List[Chunk]]]:
    """Every tag sequence of length (only the valid ones if constrained, and only those
    with O at the positions outside), with its spans."""
    names = tag_names(LABELS, scheme)
    allowed, start, end = allowed_transitions(names, scheme if constrained else None)
    found = []
    for seq in itertools.product(range(len(names)), repeat=length):
        if any(names[seq[t]] != "O" for t in outside):
            continue
        if start[seq[0]] and end[seq[-1]] and all(allowed[a, b] for a, b in zip(seq, seq[1:])):
            found.append((numpy.array(seq), tags_to_spans([names[i] for i in seq], scheme)))
    return found


def _brute_span_probs(
    pots: numpy.ndarray, length: int, scheme: str, constrained: bool, outside: Tuple[int, ...] = ()
) -> Dict[Chunk, float]:
    """P(span) for every span some sequence decodes to, by summing sequence probabilities."""
    sequences = _sequences(scheme, length, constrained, outside)
    seqs = numpy.stack([seq for seq, _ in sequences])
    scores = pots[0, 0, seqs[:, 0]].copy()
    for t in range(1, length):
        scores += pots[t, seqs[:, t - 1], seqs[:, t]]
    probs = numpy.exp(scores - numpy.logaddexp.reduce(scores))
    found: Dict[Chunk, float] = {}
    for p, (_, spans) in zip(probs, sequences):
        for span in spans:
            found[span] = found.get(span, 0.0) + p
    return found


def _labeler(scheme: str, pairwise: str):
    nlp = spacy.blank("en")
    config = {"scheme": scheme, "model": {"pairwise": pairwise, "tok2vec": TINY_TOK2VEC}}
    ner = nlp.add_pipe("lm_crf_ner", config=config)
    for label in LABELS:
        ner.add_label(label)
    ner._configure_crf()
    return nlp, ner


def _random_scores(ner, seed: int) -> CRFScores:
    """The component's own CRF head with random weights over random vectors."""
    module = get_crf_module(ner.model)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=gen) * 2.0)
        lengths = torch.tensor([end - start for _, start, end in SEGMENTS])
        x = torch.randn(len(SEGMENTS), int(lengths.max()), module.n_in, generator=gen)
        pots = module(x, lengths)
    if seed % 2:
        # every segment in a group of its own, as a batch of very different lengths gets
        groups = [
            CRFGroup(pots[s : s + 1, :n], lengths[s : s + 1], [s])
            for s, n in enumerate(lengths.tolist())
        ]
        return CRFScores(groups, SEGMENTS, DOC_LENGTHS)
    return CRFScores([CRFGroup(pots, lengths, list(range(len(SEGMENTS))))], SEGMENTS, DOC_LENGTHS)


@pytest.mark.slow
@pytest.mark.parametrize("spaces", [(), (1, 5)], ids=["words", "spaces"])
@pytest.mark.parametrize("pairwise", ["large", "small", "none"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_decoded_span_probabilities_brute_force(scheme, pairwise, spaces):
    """Every decoded span's score is the probability, summed over all tag sequences,
    that the sequence decodes to a span with its boundaries and label. Whitespace
    tokens (at the doc positions spaces) are O in every sequence."""
    nlp, ner = _labeler(scheme, pairwise)
    docs = [
        Doc(nlp.vocab, words=["\n" if i in spaces else "w" for i in range(n)]) for n in DOC_LENGTHS
    ]
    n_checked = 0
    for seed in range(12):
        scores = _random_scores(ner, seed)
        prediction = ner._decode(scores, docs)
        rows = {s: (group, row) for group in scores.groups for row, s in enumerate(group.rows)}
        for s, (doc_i, start, end) in enumerate(SEGMENTS):
            group, row = rows[s]
            segment_pots = group.potentials[row].double().numpy()
            outside = tuple(i - start for i in spaces if doc_i == 0 and start <= i < end)
            expected = _brute_span_probs(
                segment_pots, end - start, scheme, pairwise != "none", outside
            )
            for (span_start, span_end, label), prob in zip(
                prediction.spans[doc_i], prediction.span_scores[doc_i]
            ):
                if start <= span_start < end:
                    key = (span_start - start, span_end - start, label)
                    assert abs(float(prob) - expected[key]) < TOLERANCE, (
                        seed,
                        s,
                        key,
                        prob,
                        expected[key],
                    )
                    n_checked += 1
    assert n_checked >= 20


@pytest.mark.parametrize("scheme", SCHEMES)
def test_chunk_log_prob_every_span_brute_force(scheme):
    """Every possible span, decoded or not, in float64, over all sequences (also invalid ones)."""
    names = tag_names(LABELS, scheme)
    n_tags, lengths = len(names), [4, 3, 1]
    gen = torch.Generator().manual_seed(3)
    pots = torch.randn(
        len(lengths), max(lengths), n_tags, n_tags, generator=gen, dtype=torch.float64
    )
    lengths_t = torch.tensor(lengths)
    label_tags = [
        [i for i, name in enumerate(names) if name.endswith(f"-{label}")] for label in LABELS
    ]
    queries = [
        (b, start, end, k)
        for b, n in enumerate(lengths)
        for start in range(n)
        for end in range(start + 1, n + 1)
        for k in range(len(LABELS))
    ]
    alpha, beta, log_z = forward_backward(pots, lengths_t)
    tables = (torch.from_numpy(t) for t in chunk_boundaries(names, scheme))
    result = chunk_log_prob(
        pots,
        alpha,
        beta,
        log_z,
        lengths_t,
        *(torch.tensor([q[i] for q in queries]) for i in range(3)),
        torch.tensor([label_tags[q[3]] for q in queries]),
        *tables,
    ).exp()
    for (b, start, end, k), prob in zip(queries, result.tolist()):
        expected = _brute_span_probs(pots[b].numpy(), lengths[b], scheme, constrained=False)
        assert abs(prob - expected.get((start, end, LABELS[k]), 0.0)) < 1e-9, (b, start, end, k)


def test_iob1_span_continued_from_the_left_is_not_counted():
    """IOB1: I-A after I-A continues the entity, so P([1, 2) A) excludes those sequences."""
    names = tag_names(LABELS, "IOB1")
    pots = torch.zeros(1, 2, len(names), len(names), dtype=torch.float64)
    lengths = torch.tensor([2])
    alpha, beta, log_z = forward_backward(pots, lengths)
    prob = chunk_log_prob(
        pots,
        alpha,
        beta,
        log_z,
        lengths,
        torch.tensor([0]),
        torch.tensor([1]),
        torch.tensor([2]),
        torch.tensor([[names.index("B-A"), names.index("I-A")]]),
        *(torch.from_numpy(t) for t in chunk_boundaries(names, "IOB1")),
    ).exp()
    # of 25 sequences, (O|B-B|I-B, I-A) and (any, B-A) decode to it, not (B-A|I-A, I-A)
    assert float(prob) == pytest.approx(8 / 25)
