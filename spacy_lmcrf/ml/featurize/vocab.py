"""The vocabularies a tok2vec builds from all its training docs and the pipeline's vectors.

A model that keeps Vocabularies stores them in its attrs (vocabulary_attrs: "chars",
"words", "lm_words", "lowercase", "zero_digits", read with "min_freq" and
"include_vectors"), its torch module under the ref "encoder", and sets
attrs["init_with_all_docs"] = True: the CRF components then initialize it with every
training doc instead of a sample, and when it is shared through a listener, each
listening component initializes it again with its own docs, which extends the
vocabularies (the union of all of them) rather than replacing them.
"""

from functools import partial
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence

from spacy.tokens import Doc
from spacy.vocab import Vocab
from thinc.api import Model

from ..derived import derived_value
from ..ids import DEFAULT_WORD_WIDTH
from .vocabularies import Vocabularies, normalize_word


def get_vocabularies(model: Model) -> Vocabularies:
    """The vocabularies of a tok2vec that keeps them in its attrs (vocabulary_attrs), built
    from them once and again whenever they are replaced (initialize, from_bytes)."""
    attrs = model.attrs
    return derived_value(
        model.get_ref("encoder"),
        "vocabularies",
        (attrs["chars"], attrs["words"], attrs["lm_words"]),
        lambda: Vocabularies.from_attrs(attrs),
    )


def has_vocabulary(model: Model) -> bool:
    """Whether a tok2vec's vocabularies have been built (it has been initialized)."""
    return bool(model.attrs["words"] or model.attrs["chars"])


def vocabulary_attrs(
    *, min_freq: int, lowercase: bool, zero_digits: bool, include_vectors: bool
) -> Dict[str, Any]:
    """The attrs of a tok2vec whose vocabularies extend_vocabularies builds: the settings
    it reads, the (empty) vocabulary lists it fills, and init_with_all_docs."""
    return {
        "min_freq": min_freq,
        "lowercase": lowercase,
        "zero_digits": zero_digits,
        "include_vectors": include_vectors,
        "chars": [],
        "words": [],
        "lm_words": [],
        "init_with_all_docs": True,
    }


def has_vectors(vocab: Vocab) -> bool:
    return vocab.vectors.shape[0] > 0 and vocab.vectors.shape[1] > 0


def word_width(vocab: Vocab, width: Optional[int], owner: str, setting: str) -> int:
    """The word embedding width: the width asked for, else the pipeline's vectors' width,
    else DEFAULT_WORD_WIDTH. A width that differs from the vectors' is an error."""
    if not has_vectors(vocab):
        return width or DEFAULT_WORD_WIDTH
    if width is not None and width != vocab.vectors.shape[1]:
        raise ValueError(
            f"{owner}: {setting}={width} but the pipeline's vectors have width "
            f"{vocab.vectors.shape[1]}; set {setting} = null to use the vectors' width."
        )
    return vocab.vectors.shape[1]


def vector_keys(vocab: Vocab, normalize: Callable[[str], str]) -> Dict[str, int]:
    """The key of the pipeline's vectors each normalised form takes its vector from.

    The vectors are keyed by raw words, and several can share a form (Paris and paris
    when lowercasing; 1990 and 2001, both 0000, with zero digits). The word that is
    itself the form wins (paris, not Paris): its vector was trained on exactly the text
    the form stands for. Else the word in the vectors' first row wins (of 1990 and
    2001, the one listed first): GloVe and word2vec files list their words most
    frequent first, so the most frequent spelling, with the best trained vector, wins.
    Floret vectors have no keys: an empty dict.

    vocab (Vocab): the pipeline's vocab, with its vectors.
    normalize (Callable[[str], str]): the form a word is looked up by.
    RETURNS (Dict[str, int]): normalised form -> key of the vector it takes.
    """
    strings = vocab.strings
    keys: Dict[str, int] = {}
    for key, _ in sorted(vocab.vectors.key2row.items(), key=lambda item: item[1]):
        if key in strings:
            text = strings[key]
            form = normalize(text)
            if form not in keys or text == form:
                keys[form] = key
    return keys


def vector_words(vocab: Vocab, normalize: Callable[[str], str]) -> List[str]:
    """The normalised forms of the words the pipeline's vectors have, sorted."""
    return sorted(vector_keys(vocab, normalize))


def extend_vocabularies(
    model: Model, docs: Sequence[Doc], *, with_lm_words: bool = True
) -> Vocabularies:
    """Count docs (all the training docs) into vocabularies, add the words of the
    pipeline's vectors (if attrs["include_vectors"]), merge the model's current
    vocabularies into them, and store the result in the model's attrs."""
    attrs = model.attrs
    lowercase = bool(attrs["lowercase"])
    zero_digits = bool(attrs.get("zero_digits", False))
    spacy_vocab = docs[0].vocab
    pretrained: Iterable[str] = ()
    if attrs["include_vectors"] and has_vectors(spacy_vocab):
        pretrained = vector_words(
            spacy_vocab, partial(normalize_word, lowercase=lowercase, zero_digits=zero_digits)
        )
    vocab = Vocabularies.from_docs(
        docs,
        min_freq=attrs["min_freq"],
        lowercase=lowercase,
        zero_digits=zero_digits,
        pretrained_words=pretrained,
    )
    if not with_lm_words:
        vocab = Vocabularies(
            vocab.chars, vocab.words, (), lowercase=lowercase, zero_digits=zero_digits
        )
    if attrs["chars"] or attrs["words"]:
        vocab = vocab.union(get_vocabularies(model))
    attrs.update(vocab.to_attrs())
    return vocab
