"""Per-word character encoders: spacy_lmcrf.CharBiLSTM.v1, CharCNN.v1 and CharBiGRU.v1.

Each reads the characters of every word of a batch, (N, W) ids padded with CHAR_PAD
and their lengths, and returns one vector per word, (N, width).
"""

from typing import Optional, Union

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from ..crf import NEG_INF
from ..ids import CHAR_PAD
from .dropout import Dropout
from .init import init_embedding_uniform_, init_gru_, init_linear_, init_lstm_


class CharEncoder(nn.Module):
    """A character embedding table and an encoder over each word's characters.
    The table's size is set when the vocabulary is built (resize).

    char_dim (int): the character embedding width.
    width (int): the width of each word's vector.
    dropout (float): dropout on the character embeddings.
    max_word_length (Optional[int]): longer words keep their first this many characters.
    """

    def __init__(
        self, char_dim: int, width: int, dropout: float, max_word_length: Optional[int]
    ) -> None:
        super().__init__()
        if max_word_length is not None and max_word_length < 1:
            raise ValueError(f"max_word_length must be at least 1 or null, got {max_word_length}")
        self.char_dim = char_dim
        self.width = width
        self.max_word_length = max_word_length
        self.dropout = Dropout(dropout)
        self.resize(1)

    def resize(self, n_chars: int) -> None:
        embed = getattr(self, "embed", None)
        if embed is not None and embed.num_embeddings == n_chars:
            return
        device = embed.weight.device if embed is not None else None
        self.embed = nn.Embedding(n_chars, self.char_dim, padding_idx=CHAR_PAD, device=device)
        init_embedding_uniform_(self.embed.weight)
        with torch.no_grad():
            self.embed.weight[CHAR_PAD].zero_()

    def resize_to_state_dict(self, state, prefix: str = "") -> None:
        self.resize(state[prefix + "embed.weight"].shape[0])

    def forward(self, char_ids: torch.Tensor, lengths_cpu: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def encode_in_segments(
        self,
        char_ids: Optional[torch.Tensor],
        char_lengths_cpu: Optional[torch.Tensor],
        lengths_cpu: torch.Tensor,
        T: int,
    ) -> torch.Tensor:
        """Each word's vector in its slot of the (S, T) segment grid, zeros at padding:
        the words are numbered in segment order (ml.featurize.words), lengths_cpu (S,) says
        how many each segment has. RETURNS (S, T, width)."""
        if char_ids is None or char_lengths_cpu is None:
            raise ValueError("a character encoder needs the words' char_ids and char_lengths_cpu")
        words = self(char_ids, char_lengths_cpu)
        valid = (
            torch.arange(T, device=words.device)[None, :] < lengths_cpu.to(words.device)[:, None]
        )
        return words.new_zeros((len(lengths_cpu), T, words.shape[-1])).index_put((valid,), words)


class CharBiRNN(CharEncoder):
    """A bidirectional LSTM or GRU over each word's characters; the word's vector is
    the forward state after its last character and the backward state after its first
    (Lample et al. 2016; Yang et al. 2016), from the top layer.

    cell (str): "lstm" or "gru".
    hidden (int): the state size of each direction.
    depth (int): stacked bidirectional layers.
    """

    def __init__(
        self,
        cell: str,
        *,
        char_dim: int,
        hidden: int,
        depth: int,
        dropout: float,
        max_word_length: Optional[int],
    ) -> None:
        super().__init__(char_dim, 2 * hidden, dropout, max_word_length)
        self.rnn: Union[nn.LSTM, nn.GRU]
        if cell == "lstm":
            self.rnn = init_lstm_(
                nn.LSTM(char_dim, hidden, depth, batch_first=True, bidirectional=True)
            )
        elif cell == "gru":
            self.rnn = init_gru_(
                nn.GRU(char_dim, hidden, depth, batch_first=True, bidirectional=True)
            )
        else:
            raise ValueError(f"cell must be 'lstm' or 'gru', got {cell!r}")

    def forward(self, char_ids: torch.Tensor, lengths_cpu: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.embed(char_ids))
        packed = pack_padded_sequence(x, lengths_cpu, batch_first=True, enforce_sorted=False)
        _, final = self.rnn(packed)
        if isinstance(final, tuple):
            final = final[0]
        return torch.cat([final[-2], final[-1]], dim=-1)


class CharCNN(CharEncoder):
    """A convolution over each word's characters, max-pooled over the word, then tanh
    (Ma & Hovy 2016).

    filters (int): the number of filters, the width of each word's vector.
    window (int): the filter width in characters; the word is padded to keep its length.
    """

    def __init__(
        self,
        *,
        char_dim: int,
        filters: int,
        window: int,
        dropout: float,
        max_word_length: Optional[int],
    ) -> None:
        super().__init__(char_dim, filters, dropout, max_word_length)
        self.conv = init_linear_(nn.Conv1d(char_dim, filters, window, padding="same"))

    def forward(self, char_ids: torch.Tensor, lengths_cpu: torch.Tensor) -> torch.Tensor:
        x = self.dropout(self.embed(char_ids))
        h = self.conv(x.transpose(1, 2))
        steps = torch.arange(h.shape[2], device=h.device)
        padding = steps[None, :] >= lengths_cpu.to(h.device)[:, None]
        h = h.masked_fill(padding[:, None, :], NEG_INF)
        return torch.tanh(h.max(dim=2).values)
