"""Docs -> each segment as the string a character LM was pretrained on ("\\n" + the words
joined by single spaces + "\\n"), with where each word starts and ends. Plain numpy."""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy
from spacy.tokens import Doc

from ..modules.char_vocab import CharVocab
from .char_stream import DEFAULT_MAX_TOKEN_CHARS, token_chars
from .segments import SegmentBatch, batch_segments, segment_lengths

BOUNDARY = "\n"
SEPARATOR = " "


@dataclass
class CharBatch(SegmentBatch):
    """Each segment as one padded string of C characters, and where its T words are."""

    char_ids: numpy.ndarray  # (S, C)
    char_lengths: numpy.ndarray  # (S,)
    last_chars: numpy.ndarray  # (S, T)
    first_chars: numpy.ndarray  # (S, T)

    def module_inputs(self) -> Dict[str, Any]:
        return {
            "char_ids": self.char_ids,
            "char_lengths_cpu": self.char_lengths,
            "last_chars": self.last_chars,
            "first_chars": self.first_chars,
        }


def featurize_strings(
    docs: List[Doc],
    vocab: CharVocab,
    max_length: int,
    max_token_chars: Optional[int] = DEFAULT_MAX_TOKEN_CHARS,
) -> CharBatch:
    """Each segment's string, its character ids and where each word starts and ends.

    docs (List[Doc]): the batch.
    vocab (CharVocab): the LMs' characters.
    max_length (int): the most tokens per segment.
    max_token_chars (Optional[int]): the most characters read per token (token_chars):
        a segment's string has at most max_length x (max_token_chars + 1) + 1 characters.
    RETURNS (CharBatch): the padded strings and the words' first and last positions.
    """
    segments = batch_segments(docs, max_length)
    T = max((end - start for _, start, end in segments), default=0)
    strings, firsts, lasts = [], [], []
    for doc_i, start, end in segments:
        words = [token_chars(token.text, max_token_chars) for token in docs[doc_i][start:end]]
        first, position = [], len(BOUNDARY)
        for word in words:
            first.append(position)
            position += len(word) + len(SEPARATOR)
        firsts.append(first)
        lasts.append([p + len(w) - 1 for p, w in zip(first, words)])
        strings.append(BOUNDARY + SEPARATOR.join(words) + BOUNDARY)
    char_lengths = numpy.array([len(s) for s in strings], dtype="int64")
    char_ids = numpy.zeros((len(strings), int(char_lengths.max()) if strings else 0), dtype="int64")
    last_chars = numpy.zeros((len(strings), T), dtype="int64")
    first_chars = numpy.zeros((len(strings), T), dtype="int64")
    for s, string in enumerate(strings):
        char_ids[s, : len(string)] = vocab.encode(string)
        last_chars[s, : len(lasts[s])] = lasts[s]
        first_chars[s, : len(firsts[s])] = firsts[s]
    return CharBatch(
        segments=segments,
        doc_lengths=[len(doc) for doc in docs],
        lengths=segment_lengths(segments),
        char_ids=char_ids,
        char_lengths=char_lengths,
        last_chars=last_chars,
        first_chars=first_chars,
    )
