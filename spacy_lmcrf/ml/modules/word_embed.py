"""spacy_lmcrf.WordEmbedding.v1: a word embedding table initialised from the pipeline's vectors."""

from typing import Optional

import torch
from torch import nn

from ..ids import DEFAULT_WORD_WIDTH, WORD_PAD


class WordEmbedding(nn.Module):
    """A table with a row per word of the vocabulary: padding (zero), unknown, the
    training words at least min_freq times frequent, and every word of the pipeline's
    vectors. Its size is set when the vocabulary is built (resize).

    width (Optional[int]): the embedding width; None takes the vectors' width.
    min_freq (int): training words rarer than this without a vector share the unknown row.
    lowercase (bool): words are looked up lowercased.
    zero_digits (bool): every digit is replaced by 0 before lookup (also in the
        characters a character encoder beside this table reads).
    include_vectors (bool): every word of the pipeline's vectors gets a row.
    fine_tune (bool): False freezes the whole table.
    """

    def __init__(
        self,
        width: Optional[int],
        *,
        min_freq: int,
        lowercase: bool,
        zero_digits: bool,
        include_vectors: bool,
        fine_tune: bool,
    ) -> None:
        super().__init__()
        self.requested_width = width
        self.min_freq = min_freq
        self.lowercase = lowercase
        self.zero_digits = zero_digits
        self.include_vectors = include_vectors
        self.fine_tune = fine_tune
        self.resize(1, width or DEFAULT_WORD_WIDTH)

    @property
    def width(self) -> int:
        return self.table.embedding_dim

    def resize(self, n_words: int, width: int) -> None:
        table = getattr(self, "table", None)
        if table is not None and tuple(table.weight.shape) == (n_words, width):
            return
        device = table.weight.device if table is not None else None
        self.table = nn.Embedding(n_words, width, padding_idx=WORD_PAD, device=device)
        self.table.weight.requires_grad_(self.fine_tune)

    def resize_to_state_dict(self, state, prefix: str = "") -> None:
        self.resize(*state[prefix + "table.weight"].shape)

    def forward(self, word_ids: torch.Tensor) -> torch.Tensor:
        return self.table(word_ids)
