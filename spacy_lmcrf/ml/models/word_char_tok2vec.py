"""spacy_lmcrf.WordCharTok2Vec.v1: word embeddings, a character encoder and a context
encoder composed into one tok2vec.

The parts are registered builders that return torch modules without a vocabulary
(spacy_lmcrf.WordEmbedding.v1, spacy_lmcrf.CharBiLSTM.v1 / CharCNN.v1 / CharBiGRU.v1,
spacy_lmcrf.BiLSTMEncoder.v1 / BiGRUEncoder.v1). This layer puts them into one module,
wrapped once: a batch is featurized, padded per segment and run through all parts
together. The vocabularies are built at initialization from every training doc (and
extended when a shared tok2vec is initialized again by its listeners); the modules
are sized then, and from the saved state when a pipeline is loaded.
"""

from typing import Any, Dict, List, Optional

from spacy.tokens import Doc
from spacy.util import registry
from thinc.api import Model
from thinc.types import Floats2d

from ..featurize.vocab import (
    extend_vocabularies,
    has_vectors,
    has_vocabulary,
    vocabulary_attrs,
    word_width,
)
from ..featurize.words import featurize_model_words
from ..modules.birnn import BiRNNEncoder
from ..modules.char_encoders import CharEncoder
from ..modules.word_char import WordCharEncoder
from ..modules.word_embed import WordEmbedding
from ..torch_bridge import torch_module, torch_tok2vec
from .word_embed import init_word_embeddings


@registry.architectures("spacy_lmcrf.WordCharTok2Vec.v1")
def build_word_char_tok2vec(
    word_embed: WordEmbedding,
    char_embed: Optional[CharEncoder] = None,
    encoder: Optional[BiRNNEncoder] = None,
    max_length: int = 128,
) -> Model[List[Doc], List[Floats2d]]:
    """A tok2vec of word embeddings, optionally concatenated with a per-word character
    encoding, optionally read by a word-level context encoder: BiLSTM-CRF (Huang et
    al. 2015), LSTM-CRF (Lample et al. 2016), LSTM-CNN-CRF (Ma & Hovy 2016) and the
    hierarchical GRU (Yang et al. 2016) below their CRF.

    word_embed (WordEmbedding): the word embeddings (spacy_lmcrf.WordEmbedding.v1).
    char_embed (Optional[CharEncoder]): the character encoder
        (spacy_lmcrf.CharBiLSTM.v1, CharCNN.v1 or CharBiGRU.v1), or None.
    encoder (Optional[BiRNNEncoder]): the context encoder (spacy_lmcrf.BiLSTMEncoder.v1
        or BiGRUEncoder.v1), or None to output the embeddings themselves (then
        word_embed.width must be set, so that the output width is known).
    max_length (int): longest sequence run through the encoders: sentences when the doc
        has sentence boundaries, otherwise windows of this many tokens.
    """
    if encoder is None and word_embed.requested_width is None:
        raise ValueError(
            "WordCharTok2Vec without an encoder outputs the embeddings, so its width must be "
            "known when the model is built: set word_embed.width (the vectors' width)."
        )
    return word_char_model(WordCharEncoder(word_embed, char_embed, encoder), max_length)


def word_char_model(
    module: WordCharEncoder, max_length: int, name: str = "word_char_tok2vec"
) -> Model[List[Doc], List[Floats2d]]:
    """The Thinc model around a WordCharEncoder: featurizes docs into padded segments,
    builds the vocabularies at initialization and sizes the module (also from a saved
    state when a pipeline is loaded)."""
    return torch_tok2vec(
        name,
        module,
        featurize_model_words,
        init=init_word_char,
        attrs=word_char_attrs(module, max_length),
        title=name,
        ready=has_vocabulary,
    )


def word_char_attrs(module, max_length: int) -> Dict[str, Any]:
    """The attrs that init, featurize and the vocabularies read, for a module with
    word_embed and char_embed (a WordCharEncoder or one that contains its parts)."""
    char_embed = module.char_embed
    return {
        "max_length": max_length,
        "with_chars": char_embed is not None,
        "max_word_length": char_embed.max_word_length if char_embed is not None else None,
        **vocabulary_attrs(
            min_freq=module.word_embed.min_freq,
            lowercase=module.word_embed.lowercase,
            zero_digits=module.word_embed.zero_digits,
            include_vectors=module.word_embed.include_vectors,
        ),
    }


def get_module(model: Model) -> WordCharEncoder:
    return torch_module(model)


def init_word_char(model: Model, X: Optional[List[Doc]] = None, Y=None) -> Model:
    """Build the vocabularies from X (all training docs) and size the torch module.
    Initializing again extends the vocabularies. It re-initialises the whole word table
    (uniform rows, then the pipeline's vectors) every time, and the character table only
    if the character vocabulary grew; the other layers keep their weights unless their
    input width changed (a word width taken from vectors added since)."""
    if not X:
        return model
    module = get_module(model)
    spacy_vocab = X[0].vocab
    width = word_width(spacy_vocab, module.word_embed.requested_width, "WordEmbedding", "width")
    vocab = extend_vocabularies(model, X, with_lm_words=False)
    module.resize(n_chars=vocab.n_chars, n_words=vocab.n_words, word_width=width)
    init_word_embeddings(
        module.word_embed.table.weight, vocab, spacy_vocab if has_vectors(spacy_vocab) else None
    )
    if module.width != model.get_dim("nO"):
        raise ValueError(f"{model.name}: output width {module.width} != nO {model.get_dim('nO')}")
    return model
