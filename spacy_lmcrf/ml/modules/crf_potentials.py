"""CRFPotentials: the trainable CRF head, features (B, T, n_in) -> log-potentials (B, T, L, L)."""

from typing import Any, Dict, Optional, Tuple

import numpy
import torch
from torch import Tensor, nn

from ..crf import NEG_INF, BoolArray
from .dropout import Dropout
from .init import init_linear_


def _bool_buffer(
    value: Optional[BoolArray], shape: Tuple[int, ...], device: torch.device
) -> Tensor:
    if value is None:
        return torch.ones(shape, dtype=torch.bool, device=device)
    if isinstance(value, Tensor):
        tensor = value.to(device=device, dtype=torch.bool)
    else:
        tensor = torch.as_tensor(numpy.asarray(value, dtype=bool), device=device)
    if tuple(tensor.shape) != tuple(shape):
        raise ValueError(f"Constraint shape {tuple(tensor.shape)} != {shape}")
    return tensor.clone()


PAIRWISE = ("large", "small", "none")


class CRFPotentials(nn.Module):
    """Trainable CRF head mapping features (B, T, n_in) to pots (B, T, L, L).

    pairwise="small": emissions plus a transition matrix and start scores.
    pairwise="large": per-position pairwise scores (LM-LSTM-CRF), with an
    extra START row used at t = 0. Both have end scores, and NEG_INF penalties
    for disallowed transitions, start tags and end tags.
    pairwise="none": emissions only, no transition, start or end scores and no
    constraints, so the potentials factorize over tokens: the CRF's likelihood is
    then the product of per-token softmaxes and Viterbi the per-token argmax (a
    linear map + softmax, Akbik et al. 2018's "Map" head).
    """

    # buffers (register_buffer in __init__, replaced by configure)
    allowed_transitions: Tensor
    allowed_start: Tensor
    allowed_end: Tensor

    def __init__(
        self, n_in: int, n_tags: int, pairwise: str = "large", dropout: float = 0.0
    ) -> None:
        super().__init__()
        if pairwise not in PAIRWISE:
            raise ValueError(f"pairwise must be one of {', '.join(PAIRWISE)}, not {pairwise!r}")
        self.n_in = n_in
        self.pairwise = pairwise
        self.dropout = Dropout(dropout)
        self._build(n_tags, None, None)
        self.register_buffer("allowed_transitions", torch.ones((n_tags, n_tags), dtype=torch.bool))
        self.register_buffer("allowed_start", torch.ones((n_tags,), dtype=torch.bool))
        self.register_buffer("allowed_end", torch.ones((n_tags,), dtype=torch.bool))

    @property
    def n_tags(self) -> int:
        return self.end.shape[0]

    def _build(
        self,
        n_tags: int,
        device: Optional[torch.device],
        dtype: Optional[torch.dtype],
    ) -> None:
        kw: Dict[str, Any] = {"device": device, "dtype": dtype}
        if self.pairwise == "large":
            self.proj = self._new_linear(n_tags, device, dtype)
        else:
            self.emit = self._new_linear(n_tags, device, dtype)
        if self.pairwise == "small":
            self.trans = nn.Parameter(torch.zeros((n_tags, n_tags), **kw))
            self.start = nn.Parameter(torch.zeros((n_tags,), **kw))
        # "none" keeps end at zero, untrained: it only records the tag count
        self.end = nn.Parameter(torch.zeros((n_tags,), **kw), requires_grad=self.pairwise != "none")

    def _new_linear(
        self, n_tags: int, device: Optional[torch.device], dtype: Optional[torch.dtype]
    ) -> nn.Linear:
        """The projection from n_in features to the scores of n_tags tags, freshly initialized."""
        n_out = (n_tags + 1) * n_tags if self.pairwise == "large" else n_tags
        return init_linear_(nn.Linear(self.n_in, n_out, device=device, dtype=dtype))

    @property
    def _linear_name(self) -> str:
        return "proj" if self.pairwise == "large" else "emit"

    def resize_input(self, n_in: int) -> None:
        """Take n_in input features; the projection starts afresh if that changes them.
        The tag count, the transition, start and end scores and the constraints are kept."""
        if n_in < 1:
            raise ValueError(f"CRFPotentials needs at least one input feature, got {n_in}")
        if n_in == self.n_in:
            return
        self.n_in = n_in
        linear = self._new_linear(self.n_tags, self.end.device, self.end.dtype)
        setattr(self, self._linear_name, linear)

    def configure(
        self,
        n_tags: int,
        allowed_transitions: Optional[BoolArray] = None,
        allowed_start: Optional[BoolArray] = None,
        allowed_end: Optional[BoolArray] = None,
    ) -> None:
        """Set the tag count (re-initialising parameters if it changes) and the
        constraints (None = all allowed)."""
        if n_tags != self.n_tags:
            self._build(n_tags, self.end.device, self.end.dtype)
        device = self.allowed_start.device
        self.allowed_transitions = _bool_buffer(allowed_transitions, (n_tags, n_tags), device)
        self.allowed_start = _bool_buffer(allowed_start, (n_tags,), device)
        self.allowed_end = _bool_buffer(allowed_end, (n_tags,), device)

    def resize_to_state_dict(self, state_dict: dict) -> None:
        """Resize to the input width and tag count in state_dict, before load_state_dict."""
        for key in ("end", f"{self._linear_name}.weight"):
            if key not in state_dict:
                raise KeyError(f"state_dict has no {key!r} entry to infer the head's size from")
        self.resize_input(int(state_dict[f"{self._linear_name}.weight"].shape[1]))
        n_tags = int(state_dict["end"].shape[0])
        if n_tags != self.n_tags:
            self.configure(n_tags)

    def forward(self, x: Tensor, lengths: Tensor) -> Tensor:
        """Map x (B, T, n_in) to float32 pots (B, T, L, L)."""
        n_batch, n_steps, _ = x.shape
        n_tags = self.n_tags
        device = x.device
        lengths = lengths.to(device=device, dtype=torch.long)
        x = self.dropout(x)
        if self.pairwise == "none":
            emit = self.emit(x).float()
            return emit[:, :, None, :].expand(n_batch, n_steps, n_tags, n_tags)
        neg_inf = torch.tensor(NEG_INF, device=device)
        zero = torch.tensor(0.0, device=device)
        trans_pen = torch.where(self.allowed_transitions, zero, neg_inf)
        start_pen = torch.where(self.allowed_start, zero, neg_inf)
        end_pen = torch.where(self.allowed_end, zero, neg_inf)
        if self.pairwise == "small":
            emit = self.emit(x).float()
            pair = emit[:, :, None, :] + (self.trans.float() + trans_pen)
            first = emit + self.start.float()
        else:
            out = self.proj(x).float().view(n_batch, n_steps, n_tags + 1, n_tags)
            pair = out[:, :, :n_tags, :] + trans_pen
            first = out[:, :, n_tags, :]
        first = first + start_pen
        steps = torch.arange(n_steps, device=device)
        is_first = (steps == 0)[None, :, None, None]
        pots = torch.where(is_first, first[:, :, None, :], pair)
        is_last = (steps[None, :] == (lengths - 1)[:, None])[:, :, None, None]
        end = (self.end.float() + end_pen)[None, None, None, :]
        return pots + torch.where(is_last, end, zero)
