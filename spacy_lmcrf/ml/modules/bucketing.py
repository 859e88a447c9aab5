"""Length-sorted groups of sequences, so recurrent layers don't run over padding."""

from typing import Callable, List

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


def run_in_length_groups(
    run: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    lengths_cpu: torch.Tensor,
    group_size: int,
    width: int,
) -> torch.Tensor:
    """Apply run(x_group, lengths_group) -> (B_g, T_g, width) to length-sorted groups of
    the sequences of x (B, T, ...), each cut to its own longest sequence, and put the
    results back in x's order as one zero-padded (B, T, width) tensor."""
    parts, order = [], []
    for group in length_groups(lengths_cpu, group_size):
        lengths = lengths_cpu[group]
        parts.append(run(x[group.to(x.device), : int(lengths.max())], lengths))
        order.append(group)
    T = x.shape[1]
    padded = torch.cat([torch.nn.functional.pad(p, (0, 0, 0, T - p.shape[1])) for p in parts])
    out = x.new_zeros((x.shape[0], T, width))
    return out.index_put((torch.cat(order).to(x.device),), padded)
