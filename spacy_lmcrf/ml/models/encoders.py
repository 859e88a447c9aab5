"""spacy_lmcrf.BiLSTMEncoder.v1 / BiGRUEncoder.v1: word-level bidirectional RNN context encoders."""

from spacy.util import registry

from ..modules.birnn import BiRNNEncoder


@registry.architectures("spacy_lmcrf.BiLSTMEncoder.v1")
def build_bilstm_encoder(
    width: int = 400,
    depth: int = 1,
    input_dropout: float = 0.5,
    output_dropout: float = 0.5,
    locked_dropout: bool = False,
) -> BiRNNEncoder:
    """A word-level bi-LSTM context encoder (a part for spacy_lmcrf.WordCharTok2Vec.v1
    and spacy_lmcrf.TorchEncoder.v1). Defaults are Ma & Hovy 2016's: 200 per
    direction, dropout 0.5 on its input and output.

    width (int): output width, the two directions together.
    depth (int): stacked bidirectional layers.
    input_dropout (float): dropout on each layer's input.
    output_dropout (float): dropout on the last layer's output.
    locked_dropout (bool): variational dropout, one mask per sequence (Flair).
    """
    return BiRNNEncoder(
        "lstm",
        width,
        depth,
        input_dropout=input_dropout,
        output_dropout=output_dropout,
        locked_dropout=locked_dropout,
    )


@registry.architectures("spacy_lmcrf.BiGRUEncoder.v1")
def build_bigru_encoder(
    width: int = 300,
    depth: int = 2,
    input_dropout: float = 0.0,
    output_dropout: float = 0.0,
    locked_dropout: bool = False,
) -> BiRNNEncoder:
    """A word-level bi-GRU context encoder (a part for spacy_lmcrf.WordCharTok2Vec.v1
    and spacy_lmcrf.TorchEncoder.v1). Defaults are Yang et al. 2016's: hidden size
    300 (read as both directions together), two layers, no dropout (the paper names none).

    width (int): output width, the two directions together.
    depth (int): stacked bidirectional layers.
    input_dropout (float): dropout on each layer's input.
    output_dropout (float): dropout on the last layer's output.
    locked_dropout (bool): variational dropout, one mask per sequence (Flair).
    """
    return BiRNNEncoder(
        "gru",
        width,
        depth,
        input_dropout=input_dropout,
        output_dropout=output_dropout,
        locked_dropout=locked_dropout,
    )
