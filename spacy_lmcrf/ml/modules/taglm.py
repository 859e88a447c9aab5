"""TagLM's sequence encoder (Peters et al. 2017, Figure 2) as one torch module: word
embeddings and a character encoder, two bidirectional RNN layers, and the LM
embeddings concatenated at one place."""

from typing import Dict, Optional

import torch
from torch import nn

from .birnn import BiRNNEncoder
from .char_encoders import CharEncoder
from .word_char import WordCharEncoder
from .word_embed import WordEmbedding

LM_POSITIONS = ("input", "layer1", "layer2")


class TagLMEncoder(nn.Module):
    """x_k = [c_k; w_k] -> bi-RNN 1 -> bi-RNN 2, with h_LM concatenated to the input of
    the first layer ("input"), the output of the first layer ("layer1", the paper's
    equation 3) or the output of the second ("layer2") (Table 5):
    (S, T) word ids (+ (S, T, lm_width) LM embeddings) -> (S, T, width).

    word_embed (WordEmbedding): the word embedding table.
    char_embed (Optional[CharEncoder]): the per-word character encoder.
    first_layer (BiRNNEncoder), second_layer (BiRNNEncoder): one bidirectional layer
        each; their input dropout reaches the LM embeddings concatenated to their input.
    lm_width (int): the width of the LM embeddings (0: no LM, the paper's baseline).
    lm_position (str): "input", "layer1" or "layer2".
    """

    def __init__(
        self,
        word_embed: WordEmbedding,
        char_embed: Optional[CharEncoder],
        first_layer: BiRNNEncoder,
        second_layer: BiRNNEncoder,
        *,
        lm_width: int,
        lm_position: str,
    ) -> None:
        super().__init__()
        if lm_position not in LM_POSITIONS:
            raise ValueError(
                f"lm_position must be one of {', '.join(LM_POSITIONS)}, got {lm_position!r}"
            )
        if first_layer.depth != 1 or second_layer.depth != 1:
            raise ValueError("each TagLM layer is one bidirectional RNN layer (depth 1)")
        self.features = WordCharEncoder(word_embed, char_embed)
        self.first_layer = first_layer
        self.second_layer = second_layer
        self.lm_width = lm_width
        self.lm_position = lm_position
        self.resize(n_chars=1, n_words=1, word_width=word_embed.width)

    @property
    def word_embed(self) -> WordEmbedding:
        return self.features.word_embed

    @property
    def char_embed(self) -> Optional[CharEncoder]:
        return self.features.char_embed

    def _lm_at(self, position: str) -> int:
        return self.lm_width if self.lm_position == position else 0

    @property
    def width(self) -> int:
        return self.second_layer.width + self._lm_at("layer2")

    def resize(self, *, n_chars: int, n_words: int, word_width: int) -> None:
        self.features.resize(n_chars=n_chars, n_words=n_words, word_width=word_width)
        self.first_layer.resize(self.features.n_features + self._lm_at("input"))
        self.second_layer.resize(self.first_layer.width + self._lm_at("layer1"))

    def resize_to_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        self.features.resize_to_state_dict(
            {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
        )
        self.first_layer.resize_to_state_dict(state, "first_layer.")
        self.second_layer.resize_to_state_dict(state, "second_layer.")

    def forward(
        self,
        word_ids: torch.Tensor,
        lengths_cpu: torch.Tensor,
        char_ids: Optional[torch.Tensor] = None,
        char_lengths_cpu: Optional[torch.Tensor] = None,
        lm_states: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        if (lm_states is None) != (self.lm_width == 0):
            raise ValueError(
                f"TagLMEncoder of lm_width {self.lm_width} got "
                f"{'no' if lm_states is None else ''} LM states"
            )
        x = self.features(word_ids, lengths_cpu, char_ids, char_lengths_cpu)
        for position, layer in (
            ("input", self.first_layer),
            ("layer1", self.second_layer),
            ("layer2", None),
        ):
            if position == self.lm_position and lm_states is not None:
                x = torch.cat([x, lm_states.to(x.dtype)], dim=-1)
            if layer is not None:
                x = layer(x, lengths_cpu)
        return x
