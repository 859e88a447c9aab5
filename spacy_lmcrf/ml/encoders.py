"""Word-level context encoders over padded batches of sequences."""
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from .lstm_init import init_lstm_


class BiLSTMEncoder(nn.Module):
    """A bidirectional LSTM over padded sequences; padding never leaks into the states.

    n_in (int): the input width.
    width (int): the output width, split evenly over the two directions.
    depth (int): the number of stacked bidirectional layers.
    dropout (float): dropout between stacked layers.
    """

    def __init__(self, n_in: int, width: int, depth: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        if width % 2:
            raise ValueError(f"BiLSTM width must be even (two directions), got {width}")
        self.width = width
        self.lstm = init_lstm_(
            nn.LSTM(
                n_in,
                width // 2,
                num_layers=depth,
                batch_first=True,
                bidirectional=True,
                dropout=dropout if depth > 1 else 0.0,
            )
        )

    @property
    def n_in(self) -> int:
        return self.lstm.input_size

    def forward(self, x: torch.Tensor, lengths_cpu: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        packed = pack_padded_sequence(x, lengths_cpu, batch_first=True, enforce_sorted=False)
        output, _ = self.lstm(packed)
        output, _ = pad_packed_sequence(output, batch_first=True, total_length=T)
        return output
