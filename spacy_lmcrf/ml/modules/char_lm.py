"""Forward and backward character language models (Akbik et al. 2018), and their file.

Each direction is an embedding of the characters, an LSTM and a linear decoder that
predicts the next character (the forward LM) or the previous one (the backward LM,
which reads the text reversed). The two share no parameters. A BiCharLM is saved as a
tensor file (spacy_lmcrf.ml.modules.tensor_file): loading it never unpickles.
"""

from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from .char_vocab import CharVocab
from .dropout import Dropout
from .init import init_lm_decoder_, init_lm_embedding_
from .tensor_file import (
    SavedInTensorFile,
    check_meta,
    meta_fraction,
    meta_int,
    meta_strings,
)

KIND = "char_lm"
State = Tuple[torch.Tensor, torch.Tensor]


class CharLM(nn.Module):
    """One direction: (B, T) character ids -> (B, T, hidden_size) LSTM outputs, and
    the logits of the character that follows each position.

    n_chars (int): the vocabulary size (unknown symbol included).
    embedding_size (int): the width of the character embeddings.
    hidden_size (int): the LSTM's hidden size (the paper: 2048).
    num_layers (int): stacked LSTM layers (the paper: 1).
    dropout (float): dropout on the embeddings, between layers and before the decoder.
    """

    def __init__(
        self,
        n_chars: int,
        embedding_size: int,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.25,
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(n_chars, embedding_size)
        self.lstm = nn.LSTM(
            embedding_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = Dropout(dropout)
        self.decoder = nn.Linear(hidden_size, n_chars)
        init_lm_embedding_(self.embed)
        init_lm_decoder_(self.decoder)

    def forward(
        self, ids: torch.Tensor, state: Optional[State] = None
    ) -> Tuple[torch.Tensor, State]:
        outputs, state = self.lstm(self.dropout(self.embed(ids)), state)
        return outputs, state

    def logits(self, outputs: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.dropout(outputs))

    def summed_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (nats) of targets (B, T) given the outputs (B, T, hidden), summed."""
        logits = self.logits(outputs)
        return nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"
        )


class BiCharLM(SavedInTensorFile):
    """The forward and the backward character LM, with their vocabulary and sizes."""

    def __init__(
        self,
        vocab: CharVocab,
        embedding_size: int,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.25,
    ) -> None:
        super().__init__()
        self.vocab = vocab
        self.sizes: Dict[str, Any] = {
            "embedding_size": embedding_size,
            "hidden_size": hidden_size,
            "num_layers": num_layers,
            "dropout": dropout,
        }
        self.forward_lm = CharLM(len(vocab), embedding_size, hidden_size, num_layers, dropout)
        self.backward_lm = CharLM(len(vocab), embedding_size, hidden_size, num_layers, dropout)

    @property
    def hidden_size(self) -> int:
        return self.sizes["hidden_size"]

    def meta(self, **training: Any) -> Dict[str, Any]:
        return {"kind": KIND, "chars": self.vocab.chars, **self.sizes, "training": training}

    @classmethod
    def from_meta(cls, meta: Dict[str, Any], source: str = "<meta>") -> "BiCharLM":
        """An untrained BiCharLM with the vocabulary and sizes of meta (as meta() gives them).

        Building allocates what meta asks for: for a file's meta use from_tensors, which
        checks the sizes against the file's tensors first. Raises ValueError, naming source,
        when meta does not describe a BiCharLM.
        """
        check_meta(meta, KIND, "a character LM", source)
        chars = meta_strings(meta, "chars", source)
        keys = ("embedding_size", "hidden_size", "num_layers")
        embedding_size, hidden_size, num_layers = [meta_int(meta, key, source) for key in keys]
        dropout = meta_fraction(meta, "dropout", source)
        try:
            vocab = CharVocab(chars)
        except ValueError as err:
            raise ValueError(f"{source}: its metadata's 'chars' are no vocabulary: {err}") from None
        return cls(vocab, embedding_size, hidden_size, num_layers, dropout)
