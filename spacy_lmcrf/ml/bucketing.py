"""Length-sorted groups of sequences, so recurrent layers don't run over padding."""
from typing import List

import torch


def length_groups(lengths: torch.Tensor, group_size: int) -> List[torch.Tensor]:
    """Split sequence indices into groups of at most group_size, sorted by length
    (longest first), so each group is padded only to its own longest sequence."""
    order = torch.argsort(lengths.cpu(), descending=True, stable=True)
    return [order[i : i + group_size] for i in range(0, len(order), group_size)]


def reverse_padded(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each sequence of x (B, T, ...) within its length; padding stays at the end."""
    B, T = x.shape[:2]
    steps = torch.arange(T, device=x.device).unsqueeze(0)
    lengths = lengths.to(x.device).unsqueeze(1)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)
    if x.dim() == 2:
        return x.gather(1, index)
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
