"""A training batch too large for one pass, cut into pieces that each run forward and
backward alone, so that memory grows with a piece, not with the longest document.

One update on a 100,000-token document used to hold the activations of all its windows at
once (20 GiB for LM-LSTM-CRF). Every layer of our models reads a document as independent
segments (sentences, or windows of max_length tokens), so a document cut where every
layer starts a new segment gives the same segments, the same losses and, summed over the
pieces, the same gradients.
"""

from bisect import bisect_right
from typing import List, Optional, Sequence, Set, Tuple

from spacy.tokens import Doc

from ..ml.featurize.segments import doc_segments

# LM-LSTM-CRF trains in about 200 KiB of activations per token: a batch of more tokens than
# this runs in pieces of at most PIECE_TOKENS (pieces of 1,024 train 8 % faster than pieces of
# 4,096, whose LM logits no longer fit the CPU's cache; 2-core Xeon, benchmarks/RESULTS.md)
MAX_PIECE_TOKENS = 4096
PIECE_TOKENS = 1024

GoldIds = List[int]  # a doc's gold tag indices, -1 where unknown


def common_segment_starts(doc: Doc, max_lengths: Sequence[int]) -> List[int]:
    """The token positions at which every layer (one max_length each) starts a segment,
    in order; the doc's end is included. Empty for an empty doc."""
    if not len(doc):
        return []
    starts: Set[int] = set.intersection(
        *({start for start, _ in doc_segments(doc, length)} for length in max_lengths)
    )
    return sorted(starts | {len(doc)})


def update_pieces(
    docs: Sequence[Doc],
    gold: Sequence[GoldIds],
    max_lengths: Sequence[int],
    max_tokens: Optional[int] = None,
    piece_tokens: Optional[int] = None,
) -> List[Tuple[List[Doc], List[GoldIds]]]:
    """The batch (docs and their gold ids) as one piece if it has at most max_tokens
    tokens, else in pieces of at most piece_tokens where the segments allow (a single
    segment longer than that stays whole). A doc that must be cut becomes sub-docs
    (Span.as_doc) cut at positions where every layer starts a segment.

    docs (Sequence[Doc]): the batch.
    gold (Sequence[GoldIds]): each doc's gold tag ids, one per token.
    max_lengths (Sequence[int]): the max_length of every layer that segments docs.
    max_tokens (Optional[int]): a batch of more tokens runs in pieces of at most
        piece_tokens; None: MAX_PIECE_TOKENS.
    piece_tokens (Optional[int]): the most tokens per piece; None: PIECE_TOKENS.
    RETURNS (List[Tuple[List[Doc], List[GoldIds]]]): the pieces, every token in one.
    """
    if sum(len(doc) for doc in docs) <= (max_tokens or MAX_PIECE_TOKENS):
        return [(list(docs), list(gold))]
    size = min(max_tokens or MAX_PIECE_TOKENS, piece_tokens or PIECE_TOKENS)
    parts: List[Tuple[Doc, GoldIds]] = []
    for doc, ids in zip(docs, gold):
        if len(doc) <= size:
            parts.append((doc, list(ids)))
            continue
        cuts = cut_points(common_segment_starts(doc, max_lengths), size)
        for start, end in zip(cuts, cuts[1:]):
            parts.append((doc[start:end].as_doc(copy_user_data=True), list(ids[start:end])))
    pieces: List[Tuple[List[Doc], List[GoldIds]]] = []
    filled = size + 1
    for doc, ids in parts:
        if filled + len(doc) > size:
            pieces.append(([], []))
            filled = 0
        pieces[-1][0].append(doc)
        pieces[-1][1].append(ids)
        filled += len(doc)
    return pieces


def cut_points(starts: List[int], max_tokens: int) -> List[int]:
    """Cut positions from 0 to starts[-1] (the doc's end), each the furthest start within
    max_tokens of the previous cut, or the next start if the segment there is longer."""
    cuts = [0]
    while cuts[-1] < starts[-1]:
        furthest = bisect_right(starts, cuts[-1] + max_tokens) - 1
        if starts[furthest] <= cuts[-1]:
            furthest = bisect_right(starts, cuts[-1])
        cuts.append(starts[furthest])
    return cuts
