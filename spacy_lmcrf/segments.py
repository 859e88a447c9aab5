"""Split documents into the bounded sequences the recurrent layers and the CRF run over."""
from typing import List, Sequence, Tuple

from spacy.tokens import Doc

Segment = Tuple[int, int, int]  # (doc index, start token, end token), end exclusive


def doc_segments(doc: Doc, max_length: int) -> List[Tuple[int, int]]:
    """Cut a doc into (start, end) token ranges of at most max_length tokens.

    Sentences are used when the doc has sentence boundaries, so a sentence is
    never merged with its neighbour; longer sentences, and docs without
    boundaries, are cut into consecutive windows. Every token falls into
    exactly one range, in order. An empty doc has no ranges.
    """
    if max_length < 1:
        raise ValueError(f"max_length must be at least 1, got {max_length}")
    if len(doc) == 0:
        return []
    if doc.has_annotation("SENT_START"):
        bounds = [(sent.start, sent.end) for sent in doc.sents]
    else:
        bounds = [(0, len(doc))]
    ranges = []
    for start, end in bounds:
        for window_start in range(start, end, max_length):
            ranges.append((window_start, min(end, window_start + max_length)))
    return ranges


def batch_segments(docs: Sequence[Doc], max_length: int) -> List[Segment]:
    """The segments of every doc of a batch, in doc order."""
    return [
        (i, start, end)
        for i, doc in enumerate(docs)
        for start, end in doc_segments(doc, max_length)
    ]
