"""Highway layers (Srivastava et al. 2015), as LM-LSTM-CRF puts them on the character LSTMs."""

import torch
from torch import nn

from .dropout import Dropout
from .init import init_linear_


class Highway(nn.Module):
    """m = t * relu(W_H n + b_H) + (1 - t) * n, with t = sigmoid(W_T n + b_T), stacked depth times.

    width (int): the size of the input and output.
    depth (int): how many highway units are stacked.
    dropout (float): dropout on the output of each unit but the last.
    """

    def __init__(self, width: int, depth: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        self.transforms = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.gates = nn.ModuleList(nn.Linear(width, width) for _ in range(depth))
        self.dropout = Dropout(dropout)
        for layer in [*self.transforms, *self.gates]:
            init_linear_(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, (transform, gate) in enumerate(zip(self.transforms, self.gates)):
            if i:
                x = self.dropout(x)
            t = torch.sigmoid(gate(x))
            x = t * torch.relu(transform(x)) + (1.0 - t) * x
        return x
