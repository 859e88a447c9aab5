"""Word embeddings (+ a character encoder) (+ a context encoder) (+ context fusion
layers around it) as one torch module."""

from typing import Dict, Optional

import torch
from torch import nn

from .birnn import BiRNNEncoder
from .char_encoders import CharEncoder
from .psa import ContextFusion
from .word_embed import WordEmbedding


class WordCharEncoder(nn.Module):
    """Each word's embedding, concatenated with its character encoding, read by a
    context encoder: (S, T) word ids -> (S, T, width) over padded segments.

    word_embed (WordEmbedding): the word embedding table.
    char_embed (Optional[CharEncoder]): the per-word character encoder.
    encoder (Optional[BiRNNEncoder]): the context encoder; None returns the features.
    input_fusion (Optional[ContextFusion]): a context fusion layer over the features,
        before the context encoder (Wei et al.'s first layer).
    output_fusion (Optional[ContextFusion]): a context fusion layer over the context
        encoder's output (Wei et al.'s second layer); needs an encoder.
    """

    def __init__(
        self,
        word_embed: WordEmbedding,
        char_embed: Optional[CharEncoder] = None,
        encoder: Optional[BiRNNEncoder] = None,
        input_fusion: Optional[ContextFusion] = None,
        output_fusion: Optional[ContextFusion] = None,
    ) -> None:
        super().__init__()
        if output_fusion is not None and encoder is None:
            raise ValueError("a context fusion layer over the encoder's output needs an encoder")
        self.word_embed = word_embed
        self.char_embed = char_embed
        self.encoder = encoder
        self.input_fusion = input_fusion
        self.output_fusion = output_fusion
        self.resize(n_chars=1, n_words=1, word_width=word_embed.width)

    @property
    def n_features(self) -> int:
        """The width of the features the context encoder reads."""
        return self.word_embed.width + (self.char_embed.width if self.char_embed is not None else 0)

    @property
    def width(self) -> int:
        return self.encoder.width if self.encoder is not None else self.n_features

    def resize(self, *, n_chars: int, n_words: int, word_width: int) -> None:
        self.word_embed.resize(n_words, word_width)
        if self.char_embed is not None:
            self.char_embed.resize(n_chars)
        if self.input_fusion is not None:
            self.input_fusion.resize(self.n_features)
        if self.encoder is not None:
            self.encoder.resize(self.n_features)
        if self.output_fusion is not None:
            assert self.encoder is not None  # __init__ refuses an output fusion without one
            self.output_fusion.resize(self.encoder.width)

    def resize_to_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        self.word_embed.resize_to_state_dict(state, "word_embed.")
        if self.char_embed is not None:
            self.char_embed.resize_to_state_dict(state, "char_embed.")
        if self.input_fusion is not None:
            self.input_fusion.resize_to_state_dict(state, "input_fusion.")
        if self.encoder is not None:
            self.encoder.resize_to_state_dict(state, "encoder.")
        if self.output_fusion is not None:
            self.output_fusion.resize_to_state_dict(state, "output_fusion.")

    def forward(
        self,
        word_ids: torch.Tensor,
        lengths_cpu: torch.Tensor,
        char_ids: Optional[torch.Tensor] = None,
        char_lengths_cpu: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        x = self.word_embed(word_ids)
        if self.char_embed is not None:
            chars = self.char_embed.encode_in_segments(
                char_ids, char_lengths_cpu, lengths_cpu, word_ids.shape[1]
            )
            x = torch.cat([x, chars], dim=-1)
        if self.input_fusion is not None:
            x = self.input_fusion(x, lengths_cpu)
        if self.encoder is not None:
            x = self.encoder(x, lengths_cpu)
        if self.output_fusion is not None:
            x = self.output_fusion(x, lengths_cpu)
        return x
