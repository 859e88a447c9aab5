"""Variational ("locked") dropout (Gal & Ghahramani 2016), as Flair applies it."""

import torch
from torch import nn


class LockedDropout(nn.Module):
    """Dropout with one mask per sequence, shared by all its time steps.

    rate (float): the probability of dropping a feature.
    """

    def __init__(self, rate: float) -> None:
        super().__init__()
        self.rate = rate

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, T, W) -> x with the same features of each sequence dropped at every step."""
        if not self.training or not self.rate:
            return x
        mask = x.new_empty((x.shape[0], 1, x.shape[2])).bernoulli_(1.0 - self.rate)
        return x * mask / (1.0 - self.rate)
