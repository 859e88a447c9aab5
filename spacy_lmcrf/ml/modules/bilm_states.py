"""The encoders of TagLM's pretrained forward and backward word LMs (embeddings + LSTM, no
softmax) over a padded batch: h_LM = [h_fwd; h_bwd] per word (Peters et al. 2017)."""

from typing import Dict

import torch
from torch import nn

from .bucketing import length_groups, reverse_padded
from .word_lm import BiWordLM, WordLMEncoder


class BiLMStates(nn.Module):
    """The encoders of the two LMs (embeddings + LSTM, no softmax) over a padded batch."""

    def __init__(self, output_size: int, *, group_size: int) -> None:
        super().__init__()
        self.output_size = output_size
        self.group_size = group_size
        self.forward_lm = WordLMEncoder(1, 1, output_size)
        self.backward_lm = WordLMEncoder(1, 1, output_size)

    def load_lms(self, lms: BiWordLM, source: str) -> None:
        if lms.output_size != self.output_size:
            raise ValueError(
                f"BiLMEmbeddings: output_size = {self.output_size} in the config, but the LMs "
                f"of {source} output {lms.output_size} per direction: "
                f"set output_size = {lms.output_size}"
            )
        self.forward_lm = lms.forward_lm.encoder
        self.backward_lm = lms.backward_lm.encoder

    def resize_to_state_dict(self, state: Dict[str, torch.Tensor]) -> None:
        """Rebuild the encoders with the saved sizes before load_state_dict."""
        sizes = WordLMEncoder.sizes_of_state_dict(state, "forward_lm.")
        self.forward_lm = WordLMEncoder(**sizes)
        self.backward_lm = WordLMEncoder(**sizes)
        self.output_size = self.forward_lm.output_size

    def forward(
        self, word_ids: torch.Tensor, lengths_cpu: torch.Tensor, eos_id: int
    ) -> torch.Tensor:
        """word_ids (S, T) padded segments, lengths_cpu (S,) -> (S, T, 2 x output_size)."""
        S, T = word_ids.shape
        dtype = self.forward_lm.embed.weight.dtype
        out = torch.zeros((S, T, 2 * self.output_size), dtype=dtype, device=word_ids.device)
        for group in length_groups(lengths_cpu, self.group_size):
            lengths = lengths_cpu[group]
            n = int(lengths.max())
            rows = group.to(word_ids.device)
            ids = word_ids[rows, :n]
            eos = ids.new_full((len(group), 1), eos_id)
            fwd, _ = self.forward_lm(torch.cat([eos, ids], dim=1))
            bwd, _ = self.backward_lm(torch.cat([eos, reverse_padded(ids, lengths)], dim=1))
            states = torch.cat([fwd[:, 1:], reverse_padded(bwd[:, 1:], lengths)], dim=-1)
            out[rows, :n] = states
        return out
