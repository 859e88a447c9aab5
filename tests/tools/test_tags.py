import itertools
from typing import List, Optional, Sequence, Tuple

import numpy as np
import pytest

from spacy_lmcrf.tags import (
    SCHEMES,
    allowed_transitions,
    biluo_to_spans_and_missing,
    chunk_boundaries,
    chunks_from_tag_ids,
    convert_tags,
    spans_to_tags,
    tag_names,
    tags_to_spans,
)

LABELS = ["A", "B"]
# Longest sequences enumerated exhaustively (9 ** 5 BIOES sequences is slow).
MAX_LEN = {"IOB1": 5, "IOB2": 5, "BIOES": 4, "BILUO": 4}


# A literal transcription of conlleval's endOfChunk/startOfChunk (version
# 2004-01-26) plus the usual S- extension, used as an independent oracle.
def _conlleval_end(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    end = False
    if prev_tag == "B" and tag == "B":
        end = True
    if prev_tag == "B" and tag == "O":
        end = True
    if prev_tag == "I" and tag == "B":
        end = True
    if prev_tag == "I" and tag == "O":
        end = True
    if prev_tag == "E" and tag == "E":
        end = True
    if prev_tag == "E" and tag == "I":
        end = True
    if prev_tag == "E" and tag == "O":
        end = True
    # IOBES extension
    if prev_tag == "B" and tag == "S":
        end = True
    if prev_tag == "I" and tag == "S":
        end = True
    if prev_tag == "E" and tag in ("S", "B"):
        end = True
    if prev_tag == "S":
        end = True
    if prev_tag != "O" and prev_tag != "." and prev_type != type_:
        end = True
    return end


def _conlleval_start(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    start = False
    if prev_tag == "B" and tag == "B":
        start = True
    if prev_tag == "I" and tag == "B":
        start = True
    if prev_tag == "O" and tag == "B":
        start = True
    if prev_tag == "O" and tag == "I":
        start = True
    if prev_tag == "E" and tag == "E":
        start = True
    if prev_tag == "E" and tag == "I":
        start = True
    if prev_tag == "O" and tag == "E":
        start = True
    # IOBES extension
    if tag in ("B", "S"):
        start = True
    if prev_tag == "S" and tag in ("I", "E"):
        start = True
    if tag != "O" and tag != "." and prev_type != type_:
        start = True
    return start


def _conlleval_chunks(tags: Sequence[Optional[str]]) -> List[Tuple[int, int, str]]:
    letters = {"L": "E", "U": "S"}
    chunks = []
    start = None
    prev_tag, prev_type = "O", ""
    for i, full in enumerate(list(tags) + ["O"]):
        tag, _, type_ = ("O" if full is None else full).partition("-")
        tag = letters.get(tag, tag)
        if start is not None and _conlleval_end(prev_tag, tag, prev_type, type_):
            chunks.append((start, i, prev_type))
            start = None
        if _conlleval_start(prev_tag, tag, prev_type, type_):
            start = i
        prev_tag, prev_type = tag, type_
    return chunks


def _all_tag_sequences(scheme: str):
    names = tag_names(LABELS, scheme)
    for length in range(MAX_LEN[scheme] + 1):
        yield from itertools.product(names, repeat=length)


def _all_span_sets(length: int):
    """Every set of non-overlapping labelled spans over `length` tokens."""
    if length == 0:
        yield []
        return
    for rest in _all_span_sets(length - 1):
        yield rest
    for start in range(length):
        for label in LABELS:
            for rest in _all_span_sets(start):
                yield rest + [(start, length, label)]


def _is_allowed(tags: Sequence[str], scheme: str) -> bool:
    names = tag_names(LABELS, scheme)
    allowed, start, end = allowed_transitions(names, scheme)
    ids = [names.index(tag) for tag in tags]
    if not ids:
        return True
    return bool(start[ids[0]] and end[ids[-1]] and all(allowed[i, j] for i, j in zip(ids, ids[1:])))


def test_tag_names():
    assert tag_names(["PER", "LOC"], "IOB1") == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    assert tag_names(["PER"], "IOB2") == ["O", "B-PER", "I-PER"]
    assert tag_names(["X"], "BIOES") == ["O", "B-X", "I-X", "E-X", "S-X"]
    assert tag_names(["X"], "BILUO") == ["O", "B-X", "I-X", "L-X", "U-X"]
    assert tag_names([], "BILUO") == ["O"]


def test_unknown_scheme_names_valid_ones():
    with pytest.raises(ValueError, match="IOB1, IOB2, BIOES, BILUO"):
        tag_names(["X"], "IOBES")
    for func in (
        lambda: spans_to_tags(1, [], "BIO"),
        lambda: tags_to_spans(["O"], "BIO"),
        lambda: allowed_transitions(["O"], "BIO"),
        lambda: convert_tags(["O"], "IOB1", "BIO"),
    ):
        with pytest.raises(ValueError, match="Unknown tag scheme 'BIO'"):
            func()


def test_tag_names_rejects_bad_labels():
    with pytest.raises(ValueError, match="Duplicate label 'X'"):
        tag_names(["X", "Y", "X"], "IOB2")
    with pytest.raises(ValueError, match="non-empty"):
        tag_names([""], "IOB2")


@pytest.mark.parametrize(
    "scheme,spans,expected",
    [
        ("IOB1", [(0, 2, "PER")], ["I-PER", "I-PER", "O", "O"]),
        # B- only between two adjacent entities of the same type
        ("IOB1", [(0, 2, "PER"), (2, 3, "PER")], ["I-PER", "I-PER", "B-PER", "O"]),
        ("IOB1", [(0, 1, "PER"), (1, 2, "LOC")], ["I-PER", "I-LOC", "O", "O"]),
        ("IOB1", [(0, 1, "PER"), (2, 3, "PER")], ["I-PER", "O", "I-PER", "O"]),
        ("IOB1", [(1, 2, "X"), (2, 3, "X"), (3, 4, "X")], ["O", "I-X", "B-X", "B-X"]),
        ("IOB2", [(0, 2, "PER"), (2, 3, "PER")], ["B-PER", "I-PER", "B-PER", "O"]),
        ("BIOES", [(0, 3, "X"), (3, 4, "Y")], ["B-X", "I-X", "E-X", "S-Y"]),
        ("BILUO", [(0, 3, "X"), (3, 4, "Y")], ["B-X", "I-X", "L-X", "U-Y"]),
        ("BILUO", [(1, 3, "X")], ["O", "B-X", "L-X", "O"]),
    ],
)
def test_spans_to_tags_examples(scheme, spans, expected):
    assert spans_to_tags(4, spans, scheme) == expected
    assert tags_to_spans(expected, scheme) == sorted(spans)


def test_spans_to_tags_accepts_unsorted_spans_and_hyphenated_labels():
    spans = [(2, 3, "B-C"), (0, 2, "A-B")]
    tags = spans_to_tags(3, spans, "IOB2")
    assert tags == ["B-A-B", "I-A-B", "B-B-C"]
    assert tags_to_spans(tags, "IOB2") == [(0, 2, "A-B"), (2, 3, "B-C")]


def test_spans_to_tags_missing():
    tags = spans_to_tags(5, [(0, 3, "X")], "BIOES", missing=[False, True, False, True, False])
    assert tags == ["B-X", None, "E-X", None, "O"]
    tags = spans_to_tags(3, [(1, 3, "X"), (0, 1, "X")], "IOB1", missing=[True, False, False])
    assert tags == [None, "B-X", "I-X"]
    with pytest.raises(ValueError, match="missing"):
        spans_to_tags(3, [], "IOB2", missing=[False])


@pytest.mark.parametrize(
    "spans,message",
    [
        ([(0, 2, "X"), (1, 3, "Y")], r"Overlapping spans: \[\(\(0, 2, 'X'\), \(1, 3, 'Y'\)\)\]"),
        ([(0, 2, "X"), (0, 1, "X")], "Overlapping spans"),
        ([(1, 1, "X")], r"\(1, 1, 'X'\)"),
        ([(2, 5, "X")], r"length 4.*\(2, 5, 'X'\)"),
        ([(-1, 1, "X")], r"\(-1, 1, 'X'\)"),
        ([(0, 1, "")], "without a label"),
        ([(0, None, "X")], r"\(0, None, 'X'\)"),
        ([(0, 1)], r"\(0, 1\)"),
    ],
)
def test_spans_to_tags_errors(spans, message):
    with pytest.raises(ValueError, match=message):
        spans_to_tags(4, spans, "IOB2")


@pytest.mark.parametrize(
    "scheme,tags,expected",
    [
        # I- after O starts a chunk in every scheme
        ("IOB2", ["O", "I-X", "I-X"], [(1, 3, "X")]),
        ("BIOES", ["O", "I-X", "E-X"], [(1, 3, "X")]),
        # a type change starts a new chunk
        ("IOB2", ["B-X", "I-Y"], [(0, 1, "X"), (1, 2, "Y")]),
        ("IOB1", ["I-X", "I-Y", "I-Y"], [(0, 1, "X"), (1, 3, "Y")]),
        ("BIOES", ["B-X", "E-Y"], [(0, 1, "X"), (1, 2, "Y")]),
        # B- always starts a chunk
        ("IOB1", ["O", "B-X", "I-X"], [(1, 3, "X")]),
        ("BIOES", ["B-X", "B-X", "E-X"], [(0, 1, "X"), (1, 3, "X")]),
        # E-/S- close chunks, I-/E- after them start new ones
        ("BIOES", ["S-X", "I-X", "E-X"], [(0, 1, "X"), (1, 3, "X")]),
        ("BIOES", ["E-X", "E-X"], [(0, 1, "X"), (1, 2, "X")]),
        ("BIOES", ["B-X", "I-X"], [(0, 2, "X")]),
        ("BIOES", ["B-X", "O", "E-X"], [(0, 1, "X"), (2, 3, "X")]),
        ("BILUO", ["U-X", "L-X", "I-X"], [(0, 1, "X"), (1, 2, "X"), (2, 3, "X")]),
        ("BILUO", ["I-X", "L-X", "L-X"], [(0, 2, "X"), (2, 3, "X")]),
        # None is read as O
        ("IOB2", ["B-X", None, "I-X"], [(0, 1, "X"), (2, 3, "X")]),
        ("IOB2", [], []),
    ],
)
def test_tags_to_spans_invalid_sequences_like_conlleval(scheme, tags, expected):
    assert tags_to_spans(tags, scheme) == expected
    assert _conlleval_chunks(tags) == expected


@pytest.mark.parametrize("scheme", SCHEMES)
def test_tags_to_spans_matches_conlleval_exhaustively(scheme):
    for tags in _all_tag_sequences(scheme):
        assert tags_to_spans(tags, scheme) == _conlleval_chunks(tags), tags


@pytest.mark.parametrize(
    "scheme,tags,message",
    [
        ("IOB2", ["O", "E-X"], r"Position 1: Invalid IOB2 tag 'E-X'"),
        ("IOB1", ["S-X"], "Position 0"),
        ("BIOES", ["O", "L-X"], "Position 1"),
        ("BILUO", ["E-X"], "Position 0"),
        ("IOB2", ["O", "O", "B-"], r"Position 2: Invalid IOB2 tag 'B-'"),
        ("IOB2", ["PER"], "Position 0: Invalid IOB2 tag 'PER'"),
        ("IOB2", ["-X"], "Position 0"),
    ],
)
def test_tags_to_spans_rejects_foreign_tags(scheme, tags, message):
    with pytest.raises(ValueError, match=message):
        tags_to_spans(tags, scheme)


@pytest.mark.parametrize("scheme", SCHEMES)
def test_round_trip_all_span_sets(scheme):
    for length in range(MAX_LEN[scheme] + 2):
        for spans in _all_span_sets(length):
            tags = spans_to_tags(length, spans, scheme)
            assert tags_to_spans(tags, scheme) == sorted(spans), (spans, tags)
            assert _is_allowed(tags, scheme), (spans, tags)


@pytest.mark.slow
@pytest.mark.parametrize("scheme", SCHEMES)
def test_round_trip_all_tag_sequences(scheme):
    """A sequence is allowed exactly when it's the canonical encoding of its spans."""
    n_allowed = 0
    for tags in _all_tag_sequences(scheme):
        spans = tags_to_spans(tags, scheme)
        encoded = spans_to_tags(len(tags), spans, scheme)
        assert tags_to_spans(encoded, scheme) == spans
        assert _is_allowed(tags, scheme) == (encoded == list(tags)), tags
        n_allowed += encoded == list(tags)
    # allowed sequences are counted once per span set
    assert n_allowed == sum(
        1 for length in range(MAX_LEN[scheme] + 1) for _ in _all_span_sets(length)
    )


@pytest.mark.parametrize("from_scheme", SCHEMES)
@pytest.mark.parametrize("to_scheme", SCHEMES)
def test_convert_tags(from_scheme, to_scheme):
    for length in range(5):
        for spans in _all_span_sets(length):
            source = spans_to_tags(length, spans, from_scheme)
            target = spans_to_tags(length, spans, to_scheme)
            assert convert_tags(source, from_scheme, to_scheme) == target


def test_convert_tags_keeps_missing_and_normalises():
    assert convert_tags(["I-X", None, "B-X", "I-X"], "IOB1", "BILUO") == [
        "U-X",
        None,
        "B-X",
        "L-X",
    ]
    assert convert_tags(["O", "I-X", "I-X"], "IOB2", "IOB2") == ["O", "B-X", "I-X"]


def _mask(names, scheme):
    allowed, start, end = allowed_transitions(names, scheme)
    index = {name: i for i, name in enumerate(names)}
    return (lambda a, b: bool(allowed[index[a], index[b]])), index, start, end


def test_allowed_transitions_bioes():
    names = tag_names(["PER", "ORG"], "BIOES")
    may, index, start, end = _mask(names, "BIOES")
    assert not may("B-ORG", "I-PER")
    assert not may("O", "E-PER")
    assert not may("O", "I-PER")
    assert [b for b in names if may("B-PER", b)] == ["I-PER", "E-PER"]
    assert [b for b in names if may("I-PER", b)] == ["I-PER", "E-PER"]
    for closed in ("O", "E-PER", "S-ORG"):
        assert [b for b in names if may(closed, b)] == ["O", "B-PER", "S-PER", "B-ORG", "S-ORG"]
    assert [n for n in names if start[index[n]]] == ["O", "B-PER", "S-PER", "B-ORG", "S-ORG"]
    assert [n for n in names if end[index[n]]] == ["O", "E-PER", "S-PER", "E-ORG", "S-ORG"]


def test_allowed_transitions_biluo_matches_bioes():
    bioes = allowed_transitions(tag_names(["X", "Y"], "BIOES"), "BIOES")
    biluo = allowed_transitions(tag_names(["X", "Y"], "BILUO"), "BILUO")
    for a, b in zip(bioes, biluo):
        assert np.array_equal(a, b)


def test_allowed_transitions_iob2():
    names = tag_names(["PER", "ORG"], "IOB2")
    may, index, start, end = _mask(names, "IOB2")
    assert [a for a in names if may(a, "I-PER")] == ["B-PER", "I-PER"]
    assert all(may(a, b) for a in names for b in ("O", "B-PER", "B-ORG"))
    assert [n for n in names if start[index[n]]] == ["O", "B-PER", "B-ORG"]
    assert end.all()


def test_allowed_transitions_iob1():
    names = tag_names(["PER", "ORG"], "IOB1")
    may, index, start, end = _mask(names, "IOB1")
    assert [a for a in names if may(a, "B-PER")] == ["B-PER", "I-PER"]
    assert all(may(a, b) for a in names for b in ("O", "I-PER", "I-ORG"))
    assert [n for n in names if start[index[n]]] == ["O", "I-PER", "I-ORG"]
    assert end.all()


def test_allowed_transitions_any_order_and_no_scheme():
    names = ["I-X", "O", "B-X"]
    allowed, start, end = allowed_transitions(names, "IOB2")
    assert allowed.shape == (3, 3) and allowed.dtype == bool
    assert allowed.tolist() == [
        [True, True, True],
        [False, True, True],
        [True, True, True],
    ]
    assert start.tolist() == [False, True, True]
    allowed, start, end = allowed_transitions(["NN", "VB", "DT"], None)
    assert allowed.shape == (3, 3) and allowed.all() and start.all() and end.all()


def test_allowed_transitions_errors():
    with pytest.raises(ValueError, match="Position 1: Invalid IOB2 tag 'E-X'"):
        allowed_transitions(["O", "E-X"], "IOB2")
    with pytest.raises(ValueError, match="Duplicate tag names"):
        allowed_transitions(["O", "B-X", "O"], "IOB2")


@pytest.mark.parametrize(
    "tags,spans,missing",
    [
        ([], [], []),
        (["O", "U-X", "B-Y", "I-Y", "L-Y"], [(1, 2, "X"), (2, 5, "Y")], [False] * 5),
        (["-", "O", None, "U-X"], [(3, 4, "X")], [True, False, True, False]),
        # an entity broken by a missing token becomes missing
        (["B-X", "I-X", "-", "O"], [], [True, True, True, False]),
        (["B-X", None, "L-X", "U-Y"], [(3, 4, "Y")], [True, True, True, False]),
        (["B-X", "-", "I-X", "I-X", "L-X", "O"], [], [True] * 5 + [False]),
        (["-", "I-X", "L-X", "B-X", "L-X"], [(3, 5, "X")], [True] * 3 + [False] * 2),
        ([None, "L-Y", "O"], [], [True, True, False]),
        (["B-X", "-", "-", "I-Y", "L-Y"], [], [True] * 5),
    ],
)
def test_biluo_to_spans_and_missing(tags, spans, missing):
    assert biluo_to_spans_and_missing(tags) == (spans, missing)


@pytest.mark.parametrize(
    "tags,message",
    [
        (["B-X", "O"], "Position 1: entity B-X opened at position 0 is not closed"),
        (["O", "I-X"], "Position 1: 'I-X' outside an entity"),
        (["L-X"], "Position 0: 'L-X' outside an entity"),
        (["B-X", "I-Y", "L-Y"], "Position 1"),
        (["B-X", "B-X", "L-X"], "Position 1"),
        (["O", "B-X"], "Position 1: entity B-X is not closed"),
        (["U-X", "L-X"], "Position 1"),
        (["B-X", "-", "I-X", "I-Y"], "Position 3: 'I-Y' outside an entity"),
        (["O", "E-X"], "Position 1: Invalid BILUO tag 'E-X'"),
    ],
)
def test_biluo_to_spans_and_missing_errors(tags, message):
    with pytest.raises(ValueError, match=message):
        biluo_to_spans_and_missing(tags)


def test_biluo_to_spans_and_missing_reads_spacy_examples():
    spacy = pytest.importorskip("spacy")
    from spacy.tokens import Doc, Span
    from spacy.training import Example

    vocab = spacy.blank("en").vocab
    words = ["I", "like", "New", "York", "City", "and", "Paris", "."]
    reference = Doc(vocab, words=words)
    reference.set_ents(
        [Span(reference, 2, 5, "GPE"), Span(reference, 6, 7, "GPE")], default="outside"
    )
    predicted = Doc(vocab, words=["I", "like", "New York", "City", "and", "Pa", "ris", "."])
    tags = Example(predicted, reference).get_aligned_ner()
    assert tags == ["O", "O", "B-GPE", "L-GPE", "O", "B-GPE", "L-GPE", "O"]
    assert biluo_to_spans_and_missing(tags) == (
        [(2, 4, "GPE"), (5, 7, "GPE")],
        [False] * 8,
    )
    # tokens without annotation in the reference come back as None
    reference.set_ents([Span(reference, 2, 5, "GPE")], default="missing")
    predicted = Doc(vocab, words=["I", "like", "New", "YorkCity", "and", "Paris", "."])
    tags = Example(predicted, reference).get_aligned_ner()
    assert tags == [None, None, "B-GPE", "L-GPE", None, None, None]
    assert biluo_to_spans_and_missing(tags) == (
        [(2, 4, "GPE")],
        [True, True, False, False, True, True, True],
    )


@pytest.mark.parametrize("scheme", SCHEMES)
def test_chunks_from_tag_ids_read_every_sequence_as_tags_to_spans(scheme):
    """Every sequence up to MAX_LEN, valid or not, in one padded batch of rows."""
    names = tag_names(LABELS, scheme)
    rows = [
        seq
        for length in range(1, MAX_LEN[scheme] + 1)
        for seq in itertools.product(range(len(names)), repeat=length)
    ]
    width = MAX_LEN[scheme]
    # padding gets tags that would open or continue a chunk if they were read
    tag_ids = np.full((len(rows), width), names.index(f"I-{LABELS[0]}"), dtype=np.int64)
    for i, seq in enumerate(rows):
        tag_ids[i, : len(seq)] = seq
    lengths = np.array([len(seq) for seq in rows])
    row, start, end = chunks_from_tag_ids(tag_ids, lengths, *chunk_boundaries(names, scheme))
    expected = [
        (i, s, e, label)
        for i, seq in enumerate(rows)
        for s, e, label in tags_to_spans([names[t] for t in seq], scheme)
    ]
    labels = [names[t].split("-", 1)[1] for t in tag_ids[row, start]]
    assert list(zip(row.tolist(), start.tolist(), end.tolist(), labels)) == expected


def test_chunks_from_tag_ids_no_chunks():
    names = tag_names(LABELS, "BIOES")
    outside = np.zeros((2, 3), dtype=np.int64) + names.index("O")
    row, start, end = chunks_from_tag_ids(
        outside, np.array([3, 1]), *chunk_boundaries(names, "BIOES")
    )
    assert row.shape == start.shape == end.shape == (0,)


def _span_sets(length: int, labels=("X", "Y")):
    """Every set of non-overlapping labelled spans over `length` tokens."""
    if length == 0:
        yield []
        return
    for rest in _span_sets(length - 1, labels):  # the last token outside any span
        yield rest
    for start in range(length):
        for label in labels:
            for rest in _span_sets(start, labels):
                yield rest + [(start, length, label)]


def _decode(ids, names, scheme):
    """The chunks of a side's tags; unknown tags (-1) read as O."""
    return tags_to_spans([names[i] if i >= 0 else "O" for i in ids], scheme)


def _consistent_with_a_valid_path(known, names, scheme) -> bool:
    from spacy_lmcrf.tags import allowed_transitions

    allowed, may_start, may_end = allowed_transitions(names, scheme)
    reachable = {j for j in range(len(names)) if may_start[j] and known[0] in (-1, j)}
    for tag in known[1:]:
        reachable = {
            j for j in range(len(names)) if tag in (-1, j) and any(allowed[i, j] for i in reachable)
        }
    return any(may_end[j] for j in reachable)


@pytest.mark.parametrize("scheme", ["BIOES", "BILUO", "IOB2", "IOB1"])
def test_unknown_across_cuts_leaves_each_side_a_valid_path(scheme):
    """For every gold span set of up to 5 tokens and every cut: a chunk the cut crosses
    becomes unknown on both sides, every other chunk keeps its tags, and each side's
    known tags fit a path the CRF allows (also with the token before the cut unknown)."""
    from spacy_lmcrf.tags import unknown_across_cuts

    names = tag_names(["X", "Y"], scheme)
    index = {name: i for i, name in enumerate(names)}
    for length in range(2, 6):
        for spans in _span_sets(length):
            ids = [index[tag] for tag in spans_to_tags(length, spans, scheme)]
            for cut in range(1, length):
                for unknown_before in (False, True):
                    gold = list(ids)
                    if unknown_before:
                        gold[cut - 1] = -1
                    out = unknown_across_cuts(gold, [cut], names, scheme).tolist()
                    assert _consistent_with_a_valid_path(out[:cut], names, scheme)
                    assert _consistent_with_a_valid_path(out[cut:], names, scheme)
                    if unknown_before:
                        continue
                    sides = [
                        [(s, e, label) for s, e, label in _decode(out[:cut], names, scheme)],
                        [(s + cut, e + cut, x) for s, e, x in _decode(out[cut:], names, scheme)],
                    ]
                    for start, end, label in spans:
                        if start < cut < end:
                            assert out[start:end] == [-1] * (end - start)
                        else:
                            assert (start, end, label) in sides[start >= cut]
