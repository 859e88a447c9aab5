"""The character, word-embedding and language-model vocabularies of a tok2vec, and the form
a word is looked up by. Plain Python and numpy."""

import re
from collections import Counter
from typing import Dict, Iterable, List, Sequence

import numpy
from spacy.tokens import Doc

from ..ids import CHAR_UNK, N_CHAR_SPECIALS, N_WORD_SPECIALS

DIGIT = re.compile(r"\d")


def normalize_word(text: str, *, lowercase: bool, zero_digits: bool) -> str:
    """The form a word is looked up by: lowercased, and with every digit replaced by 0."""
    if lowercase:
        text = text.lower()
    return DIGIT.sub("0", text) if zero_digits else text


class Vocabularies:
    """The character, word-embedding and language-model vocabularies of a model.

    chars (List[str]): characters with their own embedding row.
    words (List[str]): normalised word forms with their own embedding row.
    lm_words (List[str]): normalised word forms the language model predicts; every
        other word is predicted as the unknown class.
    lowercase (bool): whether word forms are lowercased before lookup.
    zero_digits (bool): whether every digit of a word form is replaced by 0 before
        lookup (Yang et al. 2016).
    """

    def __init__(
        self,
        chars: Sequence[str],
        words: Sequence[str],
        lm_words: Sequence[str],
        *,
        lowercase: bool,
        zero_digits: bool = False,
    ) -> None:
        self.chars = list(chars)
        self.words = list(words)
        self.lm_words = list(lm_words)
        self.lowercase = lowercase
        self.zero_digits = zero_digits
        self.char_ids = {c: i + N_CHAR_SPECIALS for i, c in enumerate(self.chars)}
        self.word_ids = {w: i + N_WORD_SPECIALS for i, w in enumerate(self.words)}
        self.lm_ids = {w: i + 1 for i, w in enumerate(self.lm_words)}
        self._char_cache: Dict[str, numpy.ndarray] = {}

    @property
    def n_chars(self) -> int:
        return len(self.chars) + N_CHAR_SPECIALS

    @property
    def n_words(self) -> int:
        return len(self.words) + N_WORD_SPECIALS

    @property
    def n_lm_words(self) -> int:
        return len(self.lm_words) + 1

    def normalize(self, text: str) -> str:
        return normalize_word(text, lowercase=self.lowercase, zero_digits=self.zero_digits)

    def chars_of(self, text: str) -> numpy.ndarray:
        ids = self._char_cache.get(text)
        if ids is None:
            get = self.char_ids.get
            ids = numpy.array([get(c, CHAR_UNK) for c in text], dtype="int64")
            if len(self._char_cache) < 500_000:
                self._char_cache[text] = ids
        return ids

    def union(self, other: "Vocabularies") -> "Vocabularies":
        """Every entry of self, then the entries only other has."""

        def merged(a: List[str], b: List[str]) -> List[str]:
            seen = set(a)
            return a + [x for x in b if x not in seen]

        return Vocabularies(
            merged(self.chars, other.chars),
            merged(self.words, other.words),
            merged(self.lm_words, other.lm_words),
            lowercase=self.lowercase,
            zero_digits=self.zero_digits,
        )

    def to_attrs(self) -> Dict[str, object]:
        return {
            "chars": self.chars,
            "words": self.words,
            "lm_words": self.lm_words,
            "lowercase": self.lowercase,
            "zero_digits": self.zero_digits,
        }

    @classmethod
    def from_attrs(cls, attrs: Dict) -> "Vocabularies":
        return cls(
            attrs["chars"],
            attrs["words"],
            attrs["lm_words"],
            lowercase=bool(attrs["lowercase"]),
            zero_digits=bool(attrs.get("zero_digits", False)),
        )

    @classmethod
    def from_docs(
        cls,
        docs: Iterable[Doc],
        *,
        min_freq: int,
        lowercase: bool,
        zero_digits: bool = False,
        pretrained_words: Iterable[str] = (),
    ) -> "Vocabularies":
        """Count the training docs: every character seen gets a row; a word gets a
        row if it occurs at least min_freq times or has a pretrained vector; the
        language model predicts the words occurring at least min_freq times."""
        char_counts: Counter = Counter()
        word_counts: Counter = Counter()
        for doc in docs:
            for token in doc:
                char_counts.update(token.text)
                word_counts[
                    normalize_word(token.text, lowercase=lowercase, zero_digits=zero_digits)
                ] += 1
        chars = sorted(char_counts)
        frequent = sorted(w for w, n in word_counts.items() if n >= min_freq)
        frequent_set = set(frequent)
        pretrained = sorted(set(pretrained_words) - frequent_set)
        return cls(
            chars, frequent + pretrained, frequent, lowercase=lowercase, zero_digits=zero_digits
        )
