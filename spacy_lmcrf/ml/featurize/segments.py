"""Split documents into the bounded sequences the recurrent layers and the CRF run over."""

from dataclasses import dataclass
from typing import Any, Dict, List, Sequence, Tuple

import numpy
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


def padding_groups(segments: Sequence[Segment], min_cells: int = 4096) -> List[List[int]]:
    """The segments' indices in groups of similar length, longest first, for layers that
    pad a group to its longest segment: a group's padded size (segments x longest) stays
    within twice its tokens, or min_cells, so thousands of one-token sentences never pad to
    the length of one long window. Ordinary batches of sentences make one or two groups.

    segments (Sequence[Segment]): (doc index, start, end) of each segment.
    min_cells (int): the padded size below which a group is never split.
    RETURNS (List[List[int]]): each group's indices into segments, every index once.
    """
    order = sorted(range(len(segments)), key=lambda i: segments[i][1] - segments[i][2])
    groups: List[List[int]] = []
    longest = tokens = 0
    for i in order:
        length = segments[i][2] - segments[i][1]
        if groups and (len(groups[-1]) + 1) * longest <= max(2 * (tokens + length), min_cells):
            groups[-1].append(i)
            tokens += length
        else:
            groups.append([i])
            longest = tokens = length
    return groups


@dataclass
class SegmentBatch:
    """A batch of docs cut into segments: the base of every featurizer's batch.

    segments: (doc index, start, end) of each segment.
    doc_lengths: the number of tokens of each doc.
    lengths: (S,) int64, the tokens of each segment.
    """

    segments: List[Segment]
    doc_lengths: List[int]
    lengths: numpy.ndarray

    @property
    def n_segments(self) -> int:
        return len(self.segments)

    @property
    def max_length(self) -> int:
        """T, the longest segment's tokens (0 for a batch without tokens)."""
        return int(self.lengths.max()) if len(self.segments) else 0

    def module_inputs(self) -> Dict[str, Any]:
        """The keyword arguments of the torch module's forward, as numpy arrays (and
        plain numbers): an argument named *_cpu stays on the CPU, the others go to the
        module's device."""
        return {"lengths_cpu": self.lengths}


def featurize_segments(docs: Sequence[Doc], max_length: int) -> SegmentBatch:
    """The segments of docs (sentences, or windows of at most max_length tokens)."""
    segments = batch_segments(docs, max_length)
    return SegmentBatch(
        segments=segments,
        doc_lengths=[len(doc) for doc in docs],
        lengths=segment_lengths(segments),
    )


def segment_lengths(segments: Sequence[Segment]) -> numpy.ndarray:
    """(S,) int64: the tokens of each segment."""
    return numpy.array([end - start for _, start, end in segments], dtype="int64")
