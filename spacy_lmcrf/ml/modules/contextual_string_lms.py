"""The forward and backward character LMs of contextual string embeddings (Akbik et al.
2018), and the extraction of equation (8) over a padded batch of segment strings."""

from typing import Dict

import torch
from torch import nn

from .bucketing import length_groups, reverse_padded
from .char_lm import BiCharLM, CharLM


class ContextualStringLMs(nn.Module):
    """The two LMs, and the extraction of equation (8) over a padded batch of segments."""

    def __init__(self, hidden_size: int, *, chunk_chars: int, group_size: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.chunk_chars = chunk_chars
        self.group_size = group_size
        self.forward_lm = CharLM(1, 1, hidden_size)
        self.backward_lm = CharLM(1, 1, hidden_size)

    def load_lms(self, lms: BiCharLM) -> None:
        if lms.hidden_size != self.hidden_size:
            raise ValueError(
                f"ContextualStringEmbeddings: hidden_size = {self.hidden_size} in the config, but "
                f"the LM file's LSTMs have {lms.hidden_size}: set hidden_size = {lms.hidden_size}"
            )
        self.forward_lm = lms.forward_lm
        self.backward_lm = lms.backward_lm

    def resize_to_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        """Rebuild the LMs with the saved sizes before load_state_dict."""
        n_chars, embedding_size = state["forward_lm.embed.weight"].shape
        hidden_size = state["forward_lm.lstm.weight_hh_l0"].shape[1]
        num_layers = sum(1 for key in state if key.startswith("forward_lm.lstm.weight_hh_l"))
        self.hidden_size = hidden_size
        self.forward_lm = CharLM(n_chars, embedding_size, hidden_size, num_layers)
        self.backward_lm = CharLM(n_chars, embedding_size, hidden_size, num_layers)

    def run_lm(self, lm: CharLM, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """lm's outputs at positions (B, T) of ids (B, C), read chunk by chunk with the
        state carried over: (B, T, hidden_size)."""
        B, T = positions.shape
        out = ids.new_zeros((B, T, self.hidden_size), dtype=lm.decoder.weight.dtype)
        rows = torch.arange(B, device=ids.device)[:, None].expand(B, T)
        state = None
        for start in range(0, ids.shape[1], self.chunk_chars):
            end = start + self.chunk_chars
            outputs, state = lm(ids[:, start:end], state)
            here = (positions >= start) & (positions < end)
            if bool(here.any()):
                out = out.index_put((here,), outputs[rows[here], positions[here] - start])
        return out

    def forward(
        self,
        char_ids: torch.Tensor,
        char_lengths_cpu: torch.Tensor,
        last_chars: torch.Tensor,
        first_chars: torch.Tensor,
    ) -> torch.Tensor:
        """char_ids (S, C) padded segment strings, char_lengths_cpu (S,), and for every
        token slot (S, T) the position of its last and first character (0 at padding)
        -> (S, T, 2 x hidden_size)."""
        S, T = last_chars.shape
        out = char_ids.new_zeros(
            (S, T, 2 * self.hidden_size), dtype=self.forward_lm.decoder.weight.dtype
        )
        for group in length_groups(char_lengths_cpu, self.group_size):
            lengths = char_lengths_cpu[group]
            C = int(lengths.max())
            rows = group.to(char_ids.device)
            ids = char_ids[rows, :C]
            fwd = self.run_lm(self.forward_lm, ids, last_chars[rows])
            reversed_positions = (lengths.to(ids.device)[:, None] - 1 - first_chars[rows]).clamp(
                min=0
            )
            bwd = self.run_lm(self.backward_lm, reverse_padded(ids, lengths), reversed_positions)
            out = out.index_put((rows,), torch.cat([fwd, bwd], dim=-1))
        return out
