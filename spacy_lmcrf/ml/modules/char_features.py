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
        return self.char_embed.encode_in_segments(
            char_ids, char_lengths_cpu, lengths_cpu, word_ids.shape[1]
        )
