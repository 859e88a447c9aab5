"""Docs -> padded id arrays for the character-stream language model and the word layer.

Plain Python and numpy: this runs before the torch module, on the CPU, and hands it
one padded batch per call. A sentence "Pierre Vinken" becomes the character stream
``<s> P i e r r e <s> V i n k e n <s>`` (``<s>`` a separator symbol), and four index
arrays say where each word's states are read:

- ``fwd_after[i]``: the separator after word i (the forward LSTM has read the word);
- ``bwd_before[i]``: the separator before word i, in the reversed stream (the
  backward LSTM has read the word from its end);
- ``fwd_before[i]`` / ``bwd_after[i]``: the separators from which the forward / backward
  language model predicts word i.

A word longer than max_token_chars enters the stream as its first and last characters
only (token_chars), so one very long token (base64, minified JSON, a CJK run without
spaces) costs the character LSTMs at most max_token_chars steps.
"""

from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence

import numpy
from spacy.tokens import Doc

from ..ids import (  # noqa: F401 (the featurizers' importers read them here too)
    CHAR_PAD,
    CHAR_SEP,
    CHAR_UNK,
    LM_IGNORE,
    LM_UNK,
    N_CHAR_SPECIALS,
    N_WORD_SPECIALS,
    WORD_PAD,
    WORD_UNK,
)
from .segments import SegmentBatch, batch_segments, segment_lengths
from .vocabularies import DIGIT, Vocabularies, normalize_word  # noqa: F401 (read here too)

# No token of CoNLL-2000, CoNLL-2002 or CoNLL-2003 is longer (the longest has 62 characters).
DEFAULT_MAX_TOKEN_CHARS = 64


def token_chars(text: str, max_token_chars: Optional[int]) -> str:
    """The characters of a token that enter a character stream: all of them, or for a
    token longer than max_token_chars its first ceil(k/2) and last floor(k/2) characters.

    Both ends are kept because each character LSTM's state for the word is read where it
    has just finished the word: the forward one after the last characters (suffixes:
    "-ing", "'s", ".com"), the backward one after the first (capitals, prefixes). The
    middle of a very long token is what either would have forgotten.

    text (str): the token's text.
    max_token_chars (Optional[int]): the longest piece; None keeps every character.
    RETURNS (str): text, or its two ends joined.
    """
    if max_token_chars is None or len(text) <= max_token_chars:
        return text
    head = (max_token_chars + 1) // 2
    tail = max_token_chars - head
    return text[:head] + (text[-tail:] if tail else "")


def check_max_token_chars(max_token_chars: Optional[int]) -> Optional[int]:
    """Raise a ValueError unless max_token_chars is None or at least 1."""
    if max_token_chars is not None and max_token_chars < 1:
        raise ValueError(f"max_token_chars must be at least 1 or null, got {max_token_chars}")
    return max_token_chars


@dataclass
class FeatureBatch(SegmentBatch):
    """A batch of segments as padded arrays (S segments, T words, C characters)."""

    word_ids: numpy.ndarray  # (S, T)
    char_ids: numpy.ndarray  # (S, C)
    char_lengths: numpy.ndarray  # (S,)
    char_ids_rev: numpy.ndarray  # (S, C)
    fwd_after: numpy.ndarray  # (S, T)
    bwd_before: numpy.ndarray  # (S, T)
    fwd_before: numpy.ndarray  # (S, T)
    bwd_after: numpy.ndarray  # (S, T)
    lm_targets: Optional[numpy.ndarray]  # (S, T), LM_IGNORE at padding; None in prediction

    def module_inputs(self) -> Dict[str, Any]:
        inputs: Dict[str, Any] = {
            "word_ids": self.word_ids,
            "lengths_cpu": self.lengths,
            "char_ids": self.char_ids,
            "char_ids_rev": self.char_ids_rev,
            "char_lengths_cpu": self.char_lengths,
            "fwd_after": self.fwd_after,
            "bwd_before": self.bwd_before,
        }
        if self.lm_targets is not None:
            inputs["fwd_before"] = self.fwd_before
            inputs["bwd_after"] = self.bwd_after
            inputs["lm_targets"] = self.lm_targets
        return inputs


def featurize(
    docs: Sequence[Doc],
    vocab: Vocabularies,
    *,
    max_length: int,
    with_lm_targets: bool,
    max_token_chars: Optional[int] = DEFAULT_MAX_TOKEN_CHARS,
) -> FeatureBatch:
    """Turn a batch of docs into padded arrays, one row per segment.

    docs (Sequence[Doc]): the batch.
    vocab (Vocabularies): the character, word and LM vocabularies.
    max_length (int): the most tokens per segment (windows of a longer sentence).
    with_lm_targets (bool): also give the LM's targets (in training).
    max_token_chars (Optional[int]): the longest piece of the character stream per token
        (see token_chars); the word ids and LM targets read the whole token. A segment's
        stream then has at most max_length x (max_token_chars + 1) + 1 characters.
    RETURNS (FeatureBatch): the padded arrays.
    """
    segments = batch_segments(docs, max_length)
    n_seg = len(segments)
    lengths = segment_lengths(segments)
    T = int(lengths.max()) if n_seg else 0
    word_ids = numpy.zeros((n_seg, T), dtype="int64")
    positions = numpy.zeros((4, n_seg, T), dtype="int64")
    lm_targets = numpy.full((n_seg, T), LM_IGNORE, dtype="int64") if with_lm_targets else None
    streams = []
    word_get = vocab.word_ids.get
    lm_get = vocab.lm_ids.get
    sep = numpy.array([CHAR_SEP], dtype="int64")
    for s, (doc_i, start, end) in enumerate(segments):
        texts = [token.text for token in docs[doc_i][start:end]]
        norms = [vocab.normalize(text) for text in texts]
        n = len(texts)
        word_ids[s, :n] = [word_get(w, WORD_UNK) for w in norms]
        if lm_targets is not None:
            lm_targets[s, :n] = [lm_get(w, LM_UNK) for w in norms]
        pieces = [sep]
        for text in texts:
            pieces.append(vocab.chars_of(token_chars(text, max_token_chars)))
            pieces.append(sep)
        # the positions follow the (capped) pieces, so the LM's targets stay at word ends
        word_lens = numpy.array([len(p) for p in pieces[1::2]], dtype="int64")
        after = numpy.cumsum(word_lens + 1)  # separator after each word
        before = after - word_lens - 1  # separator before each word
        stream_len = int(after[-1]) + 1
        positions[0, s, :n] = after
        positions[1, s, :n] = stream_len - 1 - before
        positions[2, s, :n] = before
        positions[3, s, :n] = stream_len - 1 - after
        streams.append(numpy.concatenate(pieces))
    C = max((len(x) for x in streams), default=0)
    char_ids = numpy.zeros((n_seg, C), dtype="int64")
    char_ids_rev = numpy.zeros((n_seg, C), dtype="int64")
    for s, stream in enumerate(streams):
        char_ids[s, : len(stream)] = stream
        char_ids_rev[s, : len(stream)] = stream[::-1]
    return FeatureBatch(
        segments=segments,
        doc_lengths=[len(doc) for doc in docs],
        lengths=lengths,
        word_ids=word_ids,
        char_ids=char_ids,
        char_lengths=numpy.array([len(x) for x in streams], dtype="int64"),
        char_ids_rev=char_ids_rev,
        fwd_after=positions[0],
        bwd_before=positions[1],
        fwd_before=positions[2],
        bwd_after=positions[3],
        lm_targets=lm_targets,
    )
