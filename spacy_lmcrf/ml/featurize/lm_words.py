"""Docs -> each segment's words as the ids of a pretrained word LM's vocabulary. Plain numpy."""

from dataclasses import dataclass
from typing import Any, Dict, List

import numpy
from spacy.tokens import Doc

from ..modules.word_vocab import EOS, WordVocab
from .segments import SegmentBatch, batch_segments, segment_lengths


@dataclass
class LMBatch(SegmentBatch):
    """Each segment's words as the LMs' word ids, and the id of their line boundary."""

    word_ids: numpy.ndarray  # (S, T)
    eos_id: int

    def module_inputs(self) -> Dict[str, Any]:
        return {"word_ids": self.word_ids, "lengths_cpu": self.lengths, "eos_id": self.eos_id}


def featurize_lm_words(docs: List[Doc], vocab: WordVocab, max_length: int) -> LMBatch:
    """Each segment's tokens as the LMs' word ids (0, <unk>, for unknown words)."""
    segments = batch_segments(docs, max_length)
    lengths = segment_lengths(segments)
    word_ids = numpy.zeros(
        (len(segments), int(lengths.max()) if len(segments) else 0), dtype="int64"
    )
    for s, (doc_i, start, end) in enumerate(segments):
        word_ids[s, : end - start] = vocab.encode([token.text for token in docs[doc_i][start:end]])
    return LMBatch(segments, [len(doc) for doc in docs], lengths, word_ids, vocab.ids[EOS])
