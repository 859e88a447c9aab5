"""The vocabulary of a word-level language model, built from its training text.

The text is read as whitespace tokens, each line followed by the end-of-line token
EOS: the word LMs are trained on that stream, and a sentence is framed the same way
when its LM embeddings are read (spacy_lmcrf.BiLMEmbeddings.v1).
"""

from collections import Counter
from typing import Dict, Iterable, List, Optional, Sequence

import numpy

UNK = "<unk>"
EOS = "</s>"


def line_tokens(line: str) -> List[str]:
    """A line of text as the word LMs read it: its whitespace tokens, then EOS."""
    return line.split() + [EOS]


class WordVocab:
    """Words <-> ids. Id 0 is UNK; EOS is always known; the other words follow, most
    frequent first (the order adaptive softmax clusters rely on).

    words (Sequence[str]): the known words other than UNK, most frequent first.
    """

    def __init__(self, words: Sequence[str]) -> None:
        words = list(words)
        if UNK in words:
            raise ValueError(f"{UNK} is id 0 of every WordVocab; do not list it")
        if EOS not in words:
            raise ValueError(f"a WordVocab must know the end-of-line token {EOS}")
        if len(set(words)) != len(words):
            raise ValueError("a WordVocab's words must be distinct")
        self.words: List[str] = words
        self.ids: Dict[str, int] = {w: i + 1 for i, w in enumerate(words)}

    def __len__(self) -> int:
        return len(self.words) + 1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, WordVocab) and other.words == self.words

    def encode(self, tokens: Sequence[str]) -> numpy.ndarray:
        """int64 ids of tokens (0 for unknown ones)."""
        get = self.ids.get
        return numpy.fromiter((get(t, 0) for t in tokens), dtype="int64", count=len(tokens))

    def decode(self, ids: Iterable[int]) -> List[str]:
        return [self.words[i - 1] if i > 0 else UNK for i in ids]

    @classmethod
    def from_counts(
        cls, counts: Counter, min_count: int = 1, max_vocab: Optional[int] = None
    ) -> "WordVocab":
        """The words seen at least min_count times, at most max_vocab of them (UNK
        included), the most frequent; EOS is kept whatever its count."""
        if min_count < 1:
            raise ValueError(f"min_count must be at least 1, got {min_count}")
        if max_vocab is not None and max_vocab < 3:
            raise ValueError(f"max_vocab must be at least 3 (UNK, EOS and a word), got {max_vocab}")
        if sum(counts.values()) == 0:
            raise ValueError("the training text is empty: no words to build a vocabulary from")
        ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
        words = [w for w, n in ranked if n >= min_count and w not in (UNK, EOS)]
        if max_vocab is not None:
            words = words[: max_vocab - 2]
        return cls([EOS] + words)

    @classmethod
    def from_lines(
        cls, lines: Iterable[str], min_count: int = 1, max_vocab: Optional[int] = None
    ) -> "WordVocab":
        """Count the tokens of lines (streamed) and keep the frequent ones."""
        counts: Counter = Counter()
        for line in lines:
            counts.update(line_tokens(line))
        return cls.from_counts(counts, min_count, max_vocab)
