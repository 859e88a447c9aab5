"""Word-level context encoders over padded batches of sequences."""
import torch
from torch import nn

from .bucketing import reverse_padded, run_in_length_groups
from .lstm_init import init_lstm_


class BiLSTMEncoder(nn.Module):
    """A bidirectional LSTM over padded sequences; padding never leaks into the states.

    Each layer runs a forward LSTM over the padded batch (padding sits after every
    sequence, so it cannot reach a valid state) and a backward LSTM over each sequence
    reversed within its length. This equals a packed bi-LSTM and keeps the fast dense
    kernels (oneDNN on CPU, cuDNN on GPU). Sequences run in length-sorted groups.

    n_in (int): the input width.
    width (int): the output width, split evenly over the two directions.
    depth (int): the number of stacked bidirectional layers.
    dropout (float): dropout between stacked layers.
    group_size (int): sequences per length-sorted group.
    """

    def __init__(self, n_in: int, width: int, depth: int = 1, dropout: float = 0.0, group_size: int = 32) -> None:
        super().__init__()
        if width % 2:
            raise ValueError(f"BiLSTM width must be even (two directions), got {width}")
        self.width = width
        self.depth = depth
        self.dropout_rate = dropout
        self.group_size = group_size
        self.forward_layers = nn.ModuleList()
        self.backward_layers = nn.ModuleList()
        for i in range(depth):
            layer_in = n_in if i == 0 else width
            self.forward_layers.append(init_lstm_(nn.LSTM(layer_in, width // 2, batch_first=True)))
            self.backward_layers.append(init_lstm_(nn.LSTM(layer_in, width // 2, batch_first=True)))
        self.dropout = nn.Dropout(dropout)

    @property
    def n_in(self) -> int:
        return self.forward_layers[0].input_size

    def forward(self, x: torch.Tensor, lengths_cpu: torch.Tensor) -> torch.Tensor:
        return run_in_length_groups(self._run, x, lengths_cpu, self.group_size, self.width)

    def _run(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        for i, (fwd, bwd) in enumerate(zip(self.forward_layers, self.backward_layers)):
            if i:
                x = self.dropout(x)
            forward_states, _ = fwd(x)
            backward_states, _ = bwd(reverse_padded(x, lengths))
            x = torch.cat([forward_states, reverse_padded(backward_states, lengths)], dim=-1)
        return x

