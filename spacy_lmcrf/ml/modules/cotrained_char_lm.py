"""The co-trained character-level language model of LM-LSTM-CRF (Liu et al. 2018).

Forward and backward character LSTMs read the sentence's character stream. Their
states at the word separators go through highway units "to SL" (features for the
sequence labeler) and "to LM" (features for a word-level language model that predicts
the next word forward and the previous word backward).
"""

from typing import Optional, Tuple

import torch
from torch import nn
from torch.nn import functional as F

from ..ids import CHAR_PAD, LM_IGNORE
from .bucketing import length_groups
from .dropout import Dropout
from .highway import Highway
from .init import init_embedding_uniform_, init_linear_, init_lstm_


class CharLanguageModel(nn.Module):
    """Character LSTMs with highway units to the labeler and to the word-level LM.

    n_chars (int): rows of the character embedding table.
    char_dim (int): the character embedding size (30 in the paper).
    hidden (int): the state size of each character LSTM (300 in the paper).
    depth (int): stacked layers per character LSTM (1 in the paper).
    highway_depth (int): highway units stacked in each of the four highways (1).
    use_highway (bool): False gives the paper's "no highway" ablation: the labeler and
        the language model read the LSTM states directly.
    use_lm (bool): False gives the paper's "no LM" ablation: no language model.
    n_lm_words (int): the language model's output classes (resized at initialization).
    dropout (float): dropout on character embeddings and LSTM states.
    group_size (int): segments per length-sorted group run through the LSTMs.
    """

    def __init__(
        self,
        *,
        n_chars: int,
        char_dim: int,
        hidden: int,
        depth: int,
        highway_depth: int,
        use_highway: bool,
        use_lm: bool,
        n_lm_words: int,
        dropout: float,
        group_size: int = 32,
    ) -> None:
        super().__init__()
        self.hidden = hidden
        self.group_size = group_size
        self.embed = nn.Embedding(n_chars, char_dim, padding_idx=CHAR_PAD)
        init_embedding_uniform_(self.embed.weight)
        lstm_dropout = dropout if depth > 1 else 0.0
        self.fwd_lstm = init_lstm_(
            nn.LSTM(char_dim, hidden, depth, batch_first=True, dropout=lstm_dropout)
        )
        self.bwd_lstm = init_lstm_(
            nn.LSTM(char_dim, hidden, depth, batch_first=True, dropout=lstm_dropout)
        )
        self.dropout = Dropout(dropout)
        self.use_highway = use_highway
        self.use_lm = use_lm
        if use_highway:
            self.fwd_to_sl = Highway(hidden, highway_depth, dropout)
            self.bwd_to_sl = Highway(hidden, highway_depth, dropout)
            if use_lm:
                self.fwd_to_lm = Highway(hidden, highway_depth, dropout)
                self.bwd_to_lm = Highway(hidden, highway_depth, dropout)
        self.fwd_decoder: Optional[nn.Linear] = None
        self.bwd_decoder: Optional[nn.Linear] = None
        self.resize(n_chars=n_chars, n_lm_words=n_lm_words)

    def resize(self, *, n_chars: int, n_lm_words: int) -> None:
        """Give the character table and the LM's output layers new sizes: a layer whose
        size changes is rebuilt, all its rows fresh."""
        device = self.embed.weight.device
        if n_chars != self.embed.num_embeddings:
            dim = self.embed.embedding_dim
            self.embed = nn.Embedding(n_chars, dim, padding_idx=CHAR_PAD).to(device)
            init_embedding_uniform_(self.embed.weight)
        if self.use_lm and (
            self.fwd_decoder is None or self.fwd_decoder.out_features != n_lm_words
        ):
            self.fwd_decoder = nn.Linear(self.hidden, n_lm_words).to(device)
            self.bwd_decoder = nn.Linear(self.hidden, n_lm_words).to(device)
            for layer in (self.fwd_decoder, self.bwd_decoder):
                init_linear_(layer)

    def forward(
        self,
        char_ids: torch.Tensor,
        char_ids_rev: torch.Tensor,
        char_lengths_cpu: torch.Tensor,
        lengths_cpu: torch.Tensor,
        fwd_after: torch.Tensor,
        bwd_before: torch.Tensor,
        fwd_before: Optional[torch.Tensor] = None,
        bwd_after: Optional[torch.Tensor] = None,
        lm_targets: Optional[torch.Tensor] = None,
    ) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Return the per-word features for the labeler (S, T, 2 * hidden), zero at
        padding, and the language-model loss (mean cross-entropy forward + mean
        cross-entropy backward) when targets are given and the model has a language
        model, else None.

        The character LSTMs run over length-sorted groups of segments, each padded only
        to its own longest character stream; the states of the words (lengths_cpu (S,)
        of each segment) are read into one (words, ...) matrix, so the highways and the
        LM's decoders never run over padding: in a batch of 256 sentences padded to the
        longest, most of the (S, T) positions are padding."""
        with_lm = lm_targets is not None and self.use_lm
        n_segments, n_steps = fwd_after.shape
        device = char_ids.device
        valid = torch.arange(n_steps)[None, :] < lengths_cpu.cpu()[:, None]
        parts, rows = [], []
        for group in length_groups(char_lengths_cpu, self.group_size):
            C = int(char_lengths_cpu[group].max())
            index = group.to(device)
            fwd_states, _ = self.fwd_lstm(self.dropout(self.embed(char_ids[index, :C])))
            bwd_states, _ = self.bwd_lstm(self.dropout(self.embed(char_ids_rev[index, :C])))
            member, step = (x.to(device) for x in valid[group].nonzero(as_tuple=True))
            at = (member, step)
            gathered = [
                fwd_states[member, fwd_after[index][at]],
                bwd_states[member, bwd_before[index][at]],
            ]
            if with_lm:
                assert fwd_before is not None and bwd_after is not None  # given with lm_targets
                gathered.append(fwd_states[member, fwd_before[index][at]])
                gathered.append(bwd_states[member, bwd_after[index][at]])
            parts.append(torch.cat(gathered, dim=-1))
            rows.append(index[member] * n_steps + step)
        words = self.dropout(torch.cat(parts))
        flat = torch.cat(rows)  # each word's row in the (S * T) grid
        f, r = words[:, : self.hidden], words[:, self.hidden : 2 * self.hidden]
        if self.use_highway:
            f, r = self.fwd_to_sl(f), self.bwd_to_sl(r)
        packed = torch.cat([f, r], dim=-1)
        features = packed.new_zeros((n_segments * n_steps, packed.shape[-1]))
        features = features.index_copy(0, flat, packed).view(n_segments, n_steps, -1)
        if not with_lm:
            return features, None
        f_lm, r_lm = words[:, 2 * self.hidden : 3 * self.hidden], words[:, 3 * self.hidden :]
        if self.use_highway:
            f_lm, r_lm = self.fwd_to_lm(f_lm), self.bwd_to_lm(r_lm)
        # with_lm: lm_targets is given, and use_lm made the decoders (resize)
        assert lm_targets is not None
        assert self.fwd_decoder is not None and self.bwd_decoder is not None
        targets = lm_targets.reshape(-1)[flat]
        keep = targets != LM_IGNORE
        targets = targets[keep]
        loss = F.cross_entropy(self.fwd_decoder(f_lm[keep]), targets) + F.cross_entropy(
            self.bwd_decoder(r_lm[keep]), targets
        )
        return features, loss
