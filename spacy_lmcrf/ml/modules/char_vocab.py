"""The character vocabulary of a character language model, built from its training text."""

from collections import Counter
from typing import Dict, Iterable, List, Sequence

import numpy

UNK = "<unk>"


class CharVocab:
    """Characters <-> ids. Id 0 is the unknown symbol; every other id one character.

    chars (Sequence[str]): the known characters, most frequent first.
    """

    def __init__(self, chars: Sequence[str]) -> None:
        chars = list(chars)
        if any(len(c) != 1 for c in chars):
            raise ValueError("a CharVocab holds single characters only")
        if len(set(chars)) != len(chars):
            raise ValueError("a CharVocab's characters must be distinct")
        self.chars: List[str] = chars
        self.ids: Dict[str, int] = {c: i + 1 for i, c in enumerate(chars)}

    def __len__(self) -> int:
        return len(self.chars) + 1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocab) and other.chars == self.chars

    def encode(self, text: str) -> numpy.ndarray:
        """int64 ids of text's characters (0 for unknown ones)."""
        get = self.ids.get
        return numpy.fromiter((get(c, 0) for c in text), dtype="int64", count=len(text))

    def decode(self, ids: Iterable[int]) -> str:
        return "".join(self.chars[i - 1] if i > 0 else UNK for i in ids)

    @classmethod
    def from_counts(cls, counts: Counter, coverage: float = 0.999999) -> "CharVocab":
        """The most frequent characters that together make up `coverage` of all
        character occurrences (the paper unks the rarest 0.0001 percent); the rest
        become the unknown symbol."""
        if not 0.0 < coverage <= 1.0:
            raise ValueError(f"coverage must be in (0, 1], got {coverage}")
        total = sum(counts.values())
        if total == 0:
            raise ValueError("the training text is empty: no characters to build a vocabulary from")
        kept, covered = [], 0
        for char, count in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
            if covered >= coverage * total:
                break
            kept.append(char)
            covered += count
        return cls(kept)

    @classmethod
    def from_lines(cls, lines: Iterable[str], coverage: float = 0.999999) -> "CharVocab":
        """Count the characters of lines (streamed) and keep the `coverage` most frequent."""
        counts: Counter = Counter()
        for line in lines:
            counts.update(line)
        return cls.from_counts(counts, coverage)
