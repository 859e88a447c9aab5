"""Per-doc token rows <-> padded per-segment batches."""
from typing import List, Sequence, Tuple

from thinc.types import Floats2d, Floats3d

from ..segments import Segment


def unpad_segments(ops, padded: Floats3d, segments: Sequence[Segment], doc_lengths: List[int]) -> List[Floats2d]:
    """(S, T, W) segment rows -> one (n_tokens, W) array per doc."""
    outputs = [ops.alloc2f(n, padded.shape[-1]) for n in doc_lengths]
    for s, (doc_i, start, end) in enumerate(segments):
        outputs[doc_i][start:end] = padded[s, : end - start]
    return outputs


def pad_segments(ops, per_doc: List[Floats2d], segments: Sequence[Segment], shape: Tuple[int, int, int]) -> Floats3d:
    """One (n_tokens, W) array per doc -> (S, T, W) segment rows, zero padded."""
    padded = ops.alloc3f(*shape)
    for s, (doc_i, start, end) in enumerate(segments):
        padded[s, : end - start] = per_doc[doc_i][start:end]
    return padded
