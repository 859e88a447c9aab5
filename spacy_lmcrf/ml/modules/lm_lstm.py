"""The LM-LSTM-CRF encoder (Liu et al. 2018) as one torch module: everything below the CRF."""

from typing import Dict, Optional, Tuple

import torch
from torch import nn

from ..ids import WORD_PAD
from .birnn import BiRNNEncoder
from .cotrained_char_lm import CharLanguageModel


class LMLSTMEncoder(nn.Module):
    """Character LM features + word embeddings -> word bi-LSTM.

    The sizes of the vocabularies (characters, words, LM words) and the word
    embedding width are only known once the training data and the pipeline's
    vectors have been seen; resize() sets them, and resize_to_state_dict() sets them
    from a saved state before it is loaded.
    """

    def __init__(
        self,
        *,
        char_dim: int,
        char_hidden: int,
        char_depth: int,
        highway_depth: int,
        use_highway: bool,
        use_lm: bool,
        word_dim: int,
        width: int,
        depth: int,
        dropout: float,
    ) -> None:
        super().__init__()
        self.char_lm = CharLanguageModel(
            n_chars=1,
            char_dim=char_dim,
            hidden=char_hidden,
            depth=char_depth,
            highway_depth=highway_depth,
            use_highway=use_highway,
            use_lm=use_lm,
            n_lm_words=1,
            dropout=dropout,
        )
        self.width = width
        self.depth = depth
        self.word_embed = nn.Embedding(1, word_dim, padding_idx=WORD_PAD)
        # dropout on the encoder's input, between its layers and on its output (the paper's)
        self.encoder = BiRNNEncoder(
            "lstm", width, depth, input_dropout=dropout, output_dropout=dropout
        )
        self.encoder.resize(word_dim + 2 * char_hidden)

    @property
    def word_dim(self) -> int:
        return self.word_embed.embedding_dim

    def resize(self, *, n_chars: int, n_words: int, word_dim: int, n_lm_words: int) -> None:
        device = self.word_embed.weight.device
        self.char_lm.resize(n_chars=n_chars, n_lm_words=n_lm_words)
        if (n_words, word_dim) != tuple(self.word_embed.weight.shape):
            self.word_embed = nn.Embedding(n_words, word_dim, padding_idx=WORD_PAD).to(device)
        self.encoder.resize(word_dim + 2 * self.char_lm.hidden)

    def resize_to_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        n_words, word_dim = state["word_embed.weight"].shape
        lm = state.get("char_lm.fwd_decoder.weight")
        self.resize(
            n_chars=state["char_lm.embed.weight"].shape[0],
            n_words=n_words,
            word_dim=word_dim,
            n_lm_words=lm.shape[0] if lm is not None else 1,
        )

    def forward(
        self,
        word_ids: torch.Tensor,
        lengths_cpu: torch.Tensor,
        char_ids: torch.Tensor,
        char_ids_rev: torch.Tensor,
        char_lengths_cpu: torch.Tensor,
        fwd_after: torch.Tensor,
        bwd_before: torch.Tensor,
        fwd_before: Optional[torch.Tensor] = None,
        bwd_after: Optional[torch.Tensor] = None,
        lm_targets: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Return the word bi-LSTM states (S, T, width) and the LM loss (or None)."""
        char_features, lm_loss = self.char_lm(
            char_ids,
            char_ids_rev,
            char_lengths_cpu,
            lengths_cpu,
            fwd_after,
            bwd_before,
            fwd_before,
            bwd_after,
            lm_targets,
        )
        words = self.word_embed(word_ids)
        x = torch.cat([char_features, words], dim=-1)
        return self.encoder(x, lengths_cpu), lm_loss
