"""spacy_lmcrf.CharTok2Vec.v1: each token's character encoding alone, as a tok2vec.

Yang et al. 2016's cross-lingual joint training shares only the character-level GRU
between languages: this tok2vec holds it in spaCy's tok2vec component, and each
language's head (spacy_lmcrf.WordFeaturesTok2Vec.v1 below its CRF) listens to it and
adds its own word embeddings and word-level encoder. The character vocabulary is built
from every training doc of every listening head: the union of the languages'.
"""

from typing import List, Optional

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d

from ..featurize.vocab import extend_vocabularies, has_vocabulary, vocabulary_attrs
from ..featurize.vocabularies import Vocabularies
from ..featurize.words import featurize_model_words
from ..modules.char_encoders import CharEncoder
from ..modules.char_features import CharFeatures
from ..torch_bridge import torch_module, torch_tok2vec


@registry.architectures("spacy_lmcrf.CharTok2Vec.v1")
def build_char_tok2vec(
    char_embed: CharEncoder, zero_digits: bool = True, max_length: int = 128
) -> Model[List[Doc], List[Floats2d]]:
    """A tok2vec whose vector for each token is its character encoding alone (the part
    of Yang et al. 2016's model that cross-lingual joint training shares).

    char_embed (CharEncoder): the character encoder (spacy_lmcrf.CharBiGRU.v1, ...).
    zero_digits (bool): replace every digit by 0 before encoding.
    max_length (int): longest sequence batched together (sentences, or windows).
    """
    return torch_tok2vec(
        "char_tok2vec",
        CharFeatures(char_embed),
        featurize_model_words,
        init=init,
        attrs={
            "max_length": max_length,
            "with_chars": True,
            "max_word_length": char_embed.max_word_length,
            **vocabulary_attrs(
                min_freq=1, lowercase=False, zero_digits=zero_digits, include_vectors=False
            ),
        },
        title="char_tok2vec",
        ready=has_vocabulary,
    )


def init(model: Model, X: Optional[List[Doc]] = None, Y=None) -> Model:
    """Build (or extend) the character vocabulary from X and size the table."""
    if not X:
        return model
    vocab = extend_vocabularies(model, X, with_lm_words=False)
    # the words are not used: keep only the characters
    model.attrs.update(
        Vocabularies(vocab.chars, (), (), lowercase=False, zero_digits=vocab.zero_digits).to_attrs()
    )
    torch_module(model).char_embed.resize(vocab.n_chars)
    return model
