"""Each word's character encoding alone, over padded segments (CharTok2Vec's module)."""

from typing import Optional

import torch
from torch import nn

from .char_encoders import CharEncoder


class CharFeatures(nn.Module):
    """Each word's character encoding over padded segments: (S, T) -> (S, T, width)."""

    def __init__(self, char_embed: CharEncoder) -> None:
        super().__init__()
        self.char_embed = char_embed

    @property
    def width(self) -> int:
        return self.char_embed.width

    def resize_to_state_dict(self, state) -> None:
        self.char_embed.resize_to_state_dict(state, "char_embed.")

    def forward(
        self,
        word_ids: torch.Tensor,
        lengths_cpu: torch.Tensor,
        char_ids: Optional[torch.Tensor] = None,
        char_lengths_cpu: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        S, T = word_ids.shape
        device = self.char_embed.embed.weight.device
        valid = torch.arange(T, device=device)[None, :] < lengths_cpu.to(device)[:, None]
        words = self.char_embed(char_ids, char_lengths_cpu)
        return words.new_zeros((S, T, words.shape[-1])).index_put((valid,), words)
