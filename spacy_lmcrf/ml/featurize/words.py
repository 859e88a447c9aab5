"""Docs -> padded word ids per segment, and the characters of every word.

Plain Python and numpy, run before the torch module: one padded batch per call.
Words are numbered in segment order (segment 0's words, then segment 1's, ...), the
order of the valid positions of the (S, T) word grid read row by row.
"""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import numpy
from spacy.tokens import Doc
from thinc.api import Model

from ..ids import WORD_UNK
from .segments import SegmentBatch, batch_segments, segment_lengths
from .vocab import get_vocabularies
from .vocabularies import DIGIT, Vocabularies


@dataclass
class WordBatch(SegmentBatch):
    """A batch of segments: S segments of at most T words, N words in all, W characters."""

    word_ids: numpy.ndarray  # (S, T)
    char_ids: Optional[numpy.ndarray]  # (N, W), CHAR_PAD after each word
    char_lengths: Optional[numpy.ndarray]  # (N,), at least 1

    def module_inputs(self) -> Dict[str, Any]:
        inputs: Dict[str, Any] = {"word_ids": self.word_ids, "lengths_cpu": self.lengths}
        if self.char_ids is not None:
            inputs["char_ids"] = self.char_ids
            inputs["char_lengths_cpu"] = self.char_lengths
        return inputs


def featurize_words(
    docs: Sequence[Doc],
    vocab: Vocabularies,
    *,
    max_length: int,
    with_chars: bool,
    max_word_length: Optional[int] = None,
) -> WordBatch:
    """Turn a batch of docs into word ids per segment (sentences, or windows of
    max_length tokens) and, with_chars, each word's character ids, truncated to
    max_word_length characters. Digits become 0 in the characters too when the
    vocabulary replaces them in words."""
    segments = batch_segments(docs, max_length)
    lengths = segment_lengths(segments)
    T = int(lengths.max()) if len(segments) else 0
    word_ids = numpy.zeros((len(segments), T), dtype="int64")
    words: List[str] = []
    get = vocab.word_ids.get
    normalize = vocab.normalize
    for s, (doc_i, start, end) in enumerate(segments):
        texts = [token.text for token in docs[doc_i][start:end]]
        word_ids[s, : end - start] = [get(normalize(text), WORD_UNK) for text in texts]
        words.extend(texts)
    char_ids = char_lengths = None
    if with_chars:
        if vocab.zero_digits:
            words = [DIGIT.sub("0", text) for text in words]
        # cut the text before the lookup, so no long token's ids are built or cached
        chars = [vocab.chars_of(text[:max_word_length]) for text in words]
        char_lengths = numpy.array([max(len(c), 1) for c in chars], dtype="int64")
        char_ids = numpy.zeros((len(chars), int(char_lengths.max()) if chars else 1), dtype="int64")
        for i, c in enumerate(chars):
            char_ids[i, : len(c)] = c
    return WordBatch(
        segments=segments,
        doc_lengths=[len(doc) for doc in docs],
        lengths=lengths,
        word_ids=word_ids,
        char_ids=char_ids,
        char_lengths=char_lengths,
    )


def featurize_model_words(model: Model, docs: Sequence[Doc], is_train: bool = False) -> WordBatch:
    """featurize_words with a word-level tok2vec's vocabularies (get_vocabularies) and its
    attrs "max_length", "with_chars" and "max_word_length"."""
    attrs = model.attrs
    return featurize_words(
        docs,
        get_vocabularies(model),
        max_length=attrs["max_length"],
        with_chars=attrs["with_chars"],
        max_word_length=attrs["max_word_length"],
    )
