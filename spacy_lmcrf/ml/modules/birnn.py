"""spacy_lmcrf.BiLSTMEncoder.v1 / BiGRUEncoder.v1: word-level bidirectional RNNs over
padded batches."""

from typing import cast

import torch
from torch import nn

from .bucketing import reverse_padded, run_in_length_groups
from .dropout import Dropout
from .init import init_gru_, init_lstm_
from .locked_dropout import LockedDropout

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class BiRNNEncoder(nn.Module):
    """Stacked bidirectional LSTM or GRU layers over padded sequences (S, T, n_in) -> (S, T, width).

    As LM-LSTM-CRF's word bi-LSTM: each layer runs a forward RNN over the
    padded batch and a backward RNN over each sequence reversed within its length, in
    length-sorted groups, so padding never reaches a valid state. The input width is
    set by resize() once it is known (the owner calls it at initialization, or from a
    saved state before loading).

    cell (str): "lstm" or "gru".
    width (int): the output width, split evenly over the two directions.
    depth (int): the number of stacked bidirectional layers.
    input_dropout (float): dropout on the input of every layer.
    output_dropout (float): dropout on the output of the last layer.
    locked_dropout (bool): use one dropout mask per sequence for all its steps
        (variational dropout, as Flair) instead of a mask per step.
    group_size (int): sequences per length-sorted group.
    """

    def __init__(
        self,
        cell: str,
        width: int,
        depth: int = 1,
        *,
        input_dropout: float = 0.0,
        output_dropout: float = 0.0,
        locked_dropout: bool = False,
        group_size: int = 32,
    ) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
        if width % 2:
            raise ValueError(f"a bidirectional encoder's width must be even, got {width}")
        if depth < 1:
            raise ValueError(f"depth must be at least 1, got {depth}")
        self.cell = cell
        self.width = width
        self.depth = depth
        self.group_size = group_size
        dropout = LockedDropout if locked_dropout else Dropout
        self.input_dropout = dropout(input_dropout)
        self.output_dropout = dropout(output_dropout)
        self.forward_layers = nn.ModuleList()
        self.backward_layers = nn.ModuleList()
        self.resize(1)

    @property
    def n_in(self) -> int:
        return cast(nn.RNNBase, self.forward_layers[0]).input_size

    def resize(self, n_in: int) -> None:
        """Give the first layer n_in inputs; all layers start afresh if it changes."""
        if len(self.forward_layers) and self.n_in == n_in:
            return
        device = self.forward_layers[0].weight_ih_l0.device if len(self.forward_layers) else None
        init = init_lstm_ if self.cell == "lstm" else init_gru_
        rnn = CELLS[self.cell]
        for layers in (self.forward_layers, self.backward_layers):
            del layers[:]
            for i in range(self.depth):
                layer_in = n_in if i == 0 else self.width
                layers.append(init(rnn(layer_in, self.width // 2, batch_first=True, device=device)))

    def resize_to_state_dict(self, state, prefix: str = "") -> None:
        self.resize(state[prefix + "forward_layers.0.weight_ih_l0"].shape[1])

    def forward(self, x: torch.Tensor, lengths_cpu: torch.Tensor) -> torch.Tensor:
        return run_in_length_groups(self._run, x, lengths_cpu, self.group_size, self.width)

    def _run(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        for fwd, bwd in zip(self.forward_layers, self.backward_layers):
            x = self.input_dropout(x)
            forward_states, _ = fwd(x)
            backward_states, _ = bwd(reverse_padded(x, lengths))
            x = torch.cat([forward_states, reverse_padded(backward_states, lengths)], dim=-1)
        return self.output_dropout(x)
