"""spacy_lmcrf.CharBiLSTM.v1, CharCNN.v1 and CharBiGRU.v1: per-word character encoders."""

from typing import Optional

from spacy.util import registry

from ..modules.char_encoders import CharBiRNN, CharCNN, CharEncoder


@registry.architectures("spacy_lmcrf.CharBiLSTM.v1")
def build_char_bilstm(
    char_dim: int = 25,
    hidden: int = 25,
    depth: int = 1,
    dropout: float = 0.0,
    max_word_length: Optional[int] = 64,
) -> CharEncoder:
    """Lample et al. 2016's character encoder (a part for spacy_lmcrf.WordCharTok2Vec.v1):
    a bi-LSTM over each word's characters, whose final forward and backward states
    are the word's vector (width 2 * hidden). Defaults are the paper's.

    char_dim (int): character embedding width.
    hidden (int): state size per direction.
    depth (int): stacked bidirectional layers.
    dropout (float): dropout on the character embeddings.
    max_word_length (Optional[int]): longer words keep their first this many
        characters (no CoNLL-2000/2003 word is longer than 64); null keeps all.
    """
    return CharBiRNN(
        "lstm",
        char_dim=char_dim,
        hidden=hidden,
        depth=depth,
        dropout=dropout,
        max_word_length=max_word_length,
    )


@registry.architectures("spacy_lmcrf.CharCNN.v1")
def build_char_cnn(
    char_dim: int = 30,
    filters: int = 30,
    window: int = 3,
    dropout: float = 0.5,
    max_word_length: Optional[int] = 64,
) -> CharEncoder:
    """Ma & Hovy 2016's character encoder (a part for spacy_lmcrf.WordCharTok2Vec.v1):
    a convolution over each word's characters, max-pooled over the word, tanh (width
    filters). Defaults are the paper's, dropout on the CNN's input included.

    char_dim (int): character embedding width.
    filters (int): number of filters, the output width.
    window (int): filter width in characters.
    dropout (float): dropout on the character embeddings (the CNN's input).
    max_word_length (Optional[int]): longer words keep their first this many
        characters (no CoNLL-2000/2003 word is longer than 64); null keeps all.
    """
    return CharCNN(
        char_dim=char_dim,
        filters=filters,
        window=window,
        dropout=dropout,
        max_word_length=max_word_length,
    )


@registry.architectures("spacy_lmcrf.CharBiGRU.v1")
def build_char_bigru(
    char_dim: int = 25,
    hidden: int = 25,
    depth: int = 2,
    dropout: float = 0.0,
    max_word_length: Optional[int] = 17,
) -> CharEncoder:
    """Yang et al. 2016's character encoder (a part for spacy_lmcrf.WordCharTok2Vec.v1):
    a deep bi-GRU over each word's characters; the word's vector is the top layer's
    last forward and first backward state (width 2 * hidden). The paper gives the depth
    (2) and the truncation (17 characters for English, 20 Spanish, 35 Dutch), not the
    sizes: char_dim and hidden default to Lample et al.'s.

    char_dim (int): character embedding width.
    hidden (int): state size per direction.
    depth (int): stacked bidirectional layers.
    dropout (float): dropout on the character embeddings.
    max_word_length (Optional[int]): longer words keep their first this many characters.
    """
    return CharBiRNN(
        "gru",
        char_dim=char_dim,
        hidden=hidden,
        depth=depth,
        dropout=dropout,
        max_word_length=max_word_length,
    )
