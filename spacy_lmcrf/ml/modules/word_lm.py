"""Forward and backward word-level language models (Peters et al. 2017, section 2.3),
and their file.

Each direction is token embeddings, an LSTM with a linear projection of its output
(Sak et al. 2014; the paper's LSTM-2048-512 is hidden_size 2048, projection_size 512)
and a softmax over the vocabulary: a full one, or torch's adaptive softmax (Grave et
al. 2017) when cutoffs are given, for large vocabularies. The backward LM reads the
text reversed. The two share no parameters. Only the encoder (embeddings + LSTM) is
needed to embed text, so it is a module of its own (WordLMEncoder) that
spacy_lmcrf.BiLMEmbeddings.v1 keeps while the softmax is left behind. A BiWordLM is
saved as a tensor file (spacy_lmcrf.ml.modules.tensor_file): loading it never unpickles.
"""

from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from torch import nn

from .dropout import Dropout
from .init import init_lm_decoder_, init_lm_embedding_
from .tensor_file import (
    SavedInTensorFile,
    check_meta,
    meta_fraction,
    meta_int,
    meta_strings,
)
from .word_vocab import WordVocab

KIND = "word_lm"
State = Tuple[torch.Tensor, torch.Tensor]


class WordLMEncoder(nn.Module):
    """(B, T) word ids -> (B, T, output_size) top-layer LSTM states.

    n_words (int): the vocabulary size (UNK included).
    embedding_size (int): the width of the token embeddings.
    hidden_size (int): the LSTM's cell size.
    projection_size (int): the width of the projection of its output (0 = none).
    num_layers (int): stacked LSTM layers.
    dropout (float): dropout on the embeddings and between layers.
    """

    def __init__(
        self,
        n_words: int,
        embedding_size: int,
        hidden_size: int,
        projection_size: int = 0,
        num_layers: int = 1,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        if projection_size < 0 or projection_size >= hidden_size:
            raise ValueError(
                f"projection_size must be 0 (none) or smaller than hidden_size "
                f"({hidden_size}), got {projection_size}"
            )
        self.embed = nn.Embedding(n_words, embedding_size)
        self.lstm = nn.LSTM(
            embedding_size,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            proj_size=projection_size,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.dropout = Dropout(dropout)
        init_lm_embedding_(self.embed)

    @property
    def output_size(self) -> int:
        return self.lstm.proj_size or self.lstm.hidden_size

    def forward(
        self, ids: torch.Tensor, state: Optional[State] = None
    ) -> Tuple[torch.Tensor, State]:
        return self.lstm(self.dropout(self.embed(ids)), state)

    @staticmethod
    def sizes_of_state_dict(state: Dict[str, torch.Tensor], prefix: str = "") -> Dict[str, int]:
        """The constructor's sizes from a saved state dict."""
        n_words, embedding_size = state[prefix + "embed.weight"].shape
        hidden_size = state[prefix + "lstm.weight_hh_l0"].shape[0] // 4
        projection_key = prefix + "lstm.weight_hr_l0"
        projection_size = state[projection_key].shape[0] if projection_key in state else 0
        num_layers = sum(1 for key in state if key.startswith(prefix + "lstm.weight_ih_l"))
        return {
            "n_words": n_words,
            "embedding_size": embedding_size,
            "hidden_size": hidden_size,
            "projection_size": projection_size,
            "num_layers": num_layers,
        }


class WordLM(nn.Module):
    """One direction: the encoder and a softmax over the next (or previous) word.

    cutoffs (Sequence[int]): adaptive softmax cluster boundaries (word ids, increasing,
        below n_words); empty for a full softmax.
    The other arguments are WordLMEncoder's.
    """

    def __init__(
        self,
        n_words: int,
        embedding_size: int,
        hidden_size: int,
        projection_size: int = 0,
        num_layers: int = 1,
        dropout: float = 0.1,
        cutoffs: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.encoder = WordLMEncoder(
            n_words, embedding_size, hidden_size, projection_size, num_layers, dropout
        )
        width = self.encoder.output_size
        self.dropout = Dropout(dropout)
        if cutoffs:
            self.softmax = nn.AdaptiveLogSoftmaxWithLoss(
                width, n_words, list(cutoffs), div_value=4.0
            )
        else:
            self.decoder = init_lm_decoder_(nn.Linear(width, n_words))

    def forward(
        self, ids: torch.Tensor, state: Optional[State] = None
    ) -> Tuple[torch.Tensor, State]:
        return self.encoder(ids, state)

    def summed_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (nats) of targets (B, T) given the outputs (B, T, width), summed."""
        x = self.dropout(outputs).reshape(-1, outputs.shape[-1])
        targets = targets.reshape(-1)
        if hasattr(self, "softmax"):
            return -self.softmax(x, targets).output.sum()
        return nn.functional.cross_entropy(self.decoder(x), targets, reduction="sum")


def adaptive_cutoffs(cutoffs: Sequence[int], n_words: int) -> List[int]:
    """The cutoffs below the vocabulary size (a small vocabulary needs fewer clusters)."""
    cutoffs = [int(c) for c in cutoffs]
    if any(b <= a for a, b in zip(cutoffs, cutoffs[1:])) or any(c < 1 for c in cutoffs):
        raise ValueError(f"adaptive softmax cutoffs must be positive and increasing, got {cutoffs}")
    return [c for c in cutoffs if c < n_words - 1]


class BiWordLM(SavedInTensorFile):
    """The forward and the backward word LM, with their vocabulary and sizes."""

    def __init__(
        self,
        vocab: WordVocab,
        embedding_size: int,
        hidden_size: int,
        projection_size: int = 0,
        num_layers: int = 1,
        dropout: float = 0.1,
        cutoffs: Sequence[int] = (),
    ) -> None:
        super().__init__()
        self.vocab = vocab
        cutoffs = adaptive_cutoffs(cutoffs, len(vocab))
        self.sizes: Dict[str, Any] = {
            "embedding_size": embedding_size,
            "hidden_size": hidden_size,
            "projection_size": projection_size,
            "num_layers": num_layers,
            "dropout": dropout,
            "cutoffs": cutoffs,
        }
        self.forward_lm = WordLM(len(vocab), **self.sizes)
        self.backward_lm = WordLM(len(vocab), **self.sizes)

    @property
    def output_size(self) -> int:
        """The width of each direction's embeddings (the projection, if any)."""
        return self.forward_lm.encoder.output_size

    def meta(self, **training: Any) -> Dict[str, Any]:
        return {"kind": KIND, "words": self.vocab.words, **self.sizes, "training": training}

    @classmethod
    def from_meta(cls, meta: Dict[str, Any], source: str = "<meta>") -> "BiWordLM":
        """An untrained BiWordLM with the vocabulary and sizes of meta (as meta() gives them).

        Building allocates what meta asks for: for a file's meta use from_tensors, which
        checks the sizes against the file's tensors first. Raises ValueError, naming source,
        when meta does not describe a BiWordLM.
        """
        check_meta(meta, KIND, "a word LM", source)
        words = meta_strings(meta, "words", source)
        keys = ("embedding_size", "hidden_size", "num_layers")
        sizes: Dict[str, Any] = {key: meta_int(meta, key, source) for key in keys}
        sizes["projection_size"] = meta_int(meta, "projection_size", source, minimum=0)
        sizes["dropout"] = meta_fraction(meta, "dropout", source)
        cutoffs = meta.get("cutoffs")
        if not isinstance(cutoffs, list) or any(type(c) is not int for c in cutoffs):
            raise ValueError(
                f"{source}: its metadata's 'cutoffs' is {cutoffs!r}, not a list of whole numbers"
            )
        try:
            return cls(WordVocab(words), cutoffs=cutoffs, **sizes)
        except ValueError as err:
            raise ValueError(f"{source}: its metadata describes no word LM: {err}") from None
