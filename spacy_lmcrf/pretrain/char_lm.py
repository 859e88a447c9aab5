"""Forward and backward character language models (Akbik et al. 2018), and their file.

Each direction is an embedding of the characters, an LSTM and a linear decoder that
predicts the next character (the forward LM) or the previous one (the backward LM,
which reads the text reversed). The two share no parameters. A BiCharLM is saved as a
tensor file (spacy_lmcrf.pretrain.tensor_file): loading it never unpickles.
"""
from pathlib import Path
from typing import Any, Dict, Optional, Tuple, Union

import torch
from torch import nn

from .char_vocab import CharVocab
from .tensor_file import read_tensor_file, write_tensor_file

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
        self, n_chars: int, embedding_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.25
    ) -> None:
        super().__init__()
        self.embed = nn.Embedding(n_chars, embedding_size)
        self.lstm = nn.LSTM(
            embedding_size, hidden_size, num_layers=num_layers, batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(dropout)
        self.decoder = nn.Linear(hidden_size, n_chars)
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)
        nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)

    def forward(self, ids: torch.Tensor, state: Optional[State] = None) -> Tuple[torch.Tensor, State]:
        outputs, state = self.lstm(self.dropout(self.embed(ids)), state)
        return outputs, state

    def logits(self, outputs: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.dropout(outputs))

    def summed_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (nats) of targets (B, T) given the outputs (B, T, hidden), summed."""
        logits = self.logits(outputs)
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum")


class BiCharLM(nn.Module):
    """The forward and the backward character LM, with their vocabulary and sizes."""

    def __init__(
        self, vocab: CharVocab, embedding_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.25
    ) -> None:
        super().__init__()
        self.vocab = vocab
        self.sizes = {
            "embedding_size": embedding_size, "hidden_size": hidden_size,
            "num_layers": num_layers, "dropout": dropout,
        }
        self.forward_lm = CharLM(len(vocab), embedding_size, hidden_size, num_layers, dropout)
        self.backward_lm = CharLM(len(vocab), embedding_size, hidden_size, num_layers, dropout)

    @property
    def hidden_size(self) -> int:
        return self.sizes["hidden_size"]

    def meta(self, **training: Any) -> Dict[str, Any]:
        return {"kind": KIND, "chars": self.vocab.chars, **self.sizes, "training": training}

    def save(self, path: Union[str, Path], **training: Any) -> None:
        """Write the LMs to path; `training` (numbers, strings) is kept as provenance."""
        write_tensor_file(path, self.state_dict(), self.meta(**training))

    @classmethod
    def from_meta(cls, meta: Dict[str, Any], source: str = "<meta>") -> "BiCharLM":
        if meta.get("kind") != KIND:
            raise ValueError(f"{source} holds a {meta.get('kind')!r} model, not a character LM ({KIND!r})")
        return cls(
            CharVocab(meta["chars"]), meta["embedding_size"], meta["hidden_size"],
            meta["num_layers"], meta["dropout"],
        )

    @classmethod
    def load(cls, path: Union[str, Path]) -> "BiCharLM":
        """A BiCharLM saved by save()."""
        tensors, meta = read_tensor_file(path)
        model = cls.from_meta(meta, str(path))
        model.load_state_dict(tensors)
        model.training_info = meta.get("training", {})
        return model
