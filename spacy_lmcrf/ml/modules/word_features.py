"""Word embeddings concatenated with given per-word features, read by a context encoder
(WordFeaturesTok2Vec's module)."""

import torch
from torch import nn

from .birnn import BiRNNEncoder
from .word_embed import WordEmbedding


class WordFeatureEncoder(nn.Module):
    """(S, T) word ids and (S, T, n_features) features -> (S, T, encoder.width)."""

    def __init__(self, word_embed: WordEmbedding, encoder: BiRNNEncoder, n_features: int) -> None:
        super().__init__()
        self.word_embed = word_embed
        self.encoder = encoder
        self.n_features = n_features
        self.resize(n_words=1, word_width=word_embed.width)

    @property
    def width(self) -> int:
        return self.encoder.width

    def resize(self, *, n_words: int, word_width: int) -> None:
        self.word_embed.resize(n_words, word_width)
        self.encoder.resize(self.word_embed.width + self.n_features)

    def resize_to_state_dict(self, state) -> None:
        self.word_embed.resize_to_state_dict(state, "word_embed.")
        self.encoder.resize_to_state_dict(state, "encoder.")

    def forward(
        self, word_ids: torch.Tensor, features: torch.Tensor, lengths_cpu: torch.Tensor
    ) -> torch.Tensor:
        x = torch.cat([self.word_embed(word_ids), features], dim=-1)
        return self.encoder(x, lengths_cpu)
