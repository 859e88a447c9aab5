"""spacy_lmcrf.ContextFusion.v1: position-aware self-attention (PSA) and the
self-attentional context fusion layer of Wei et al. (Section IV, equations 4-15).

Scores (eq. 7-8): f(x_i, x_j) = w . tanh(W1 x_i + W2 x_j + b) + Psi_ij, with the
positional bias Psi_ij = alpha1 M_ij + alpha2 P_ij + alpha3 G_ij:
- M (eq. 9), the self-disabled mask: no token attends to itself. M is 0 or -inf, so
  alpha1 does not matter as long as it is positive; it is a switch here, applied
  as a mask like padding.
- P (eq. 11-12), the token-specific position bias: x_i . W3[clip(i - j, -r, r)],
  W3 in R^(2r+1) x d.
- G (eq. 10), the distance-aware Gaussian bias: -(i - j)^2 / (2 eps^2), eps = k / 2.
The weights (eq. 4) are a softmax over the keys a query may attend to (not padding,
not itself when M is on); a query with none (a one-token sentence under M) gets zero
weights and a zero attention output, never NaN. The attention output (eq. 5) is
s_i = sum_j a_i(j) x_j; the fusion layer (eq. 13-15) transforms it by two tanh layers
and gates it with its input: x~_i = lambda * x_i + (1 - lambda) * s~_i.
"""

from typing import Optional

import torch
from torch import nn

from .bucketing import length_groups
from .dropout import Dropout
from .init import init_linear_

MASKED = -1e4  # a large finite negative, as the CRF uses: masked keys never give NaN
# Pairs are scored over the padded (T, T) grid when at least this share of it is allowed
# (length-sorted groups at prediction), else over the allowed pairs only (a training
# batch of mixed lengths): each is the faster one there on CPU.
DENSE_FILL = 0.6


class PositionAwareSelfAttention(nn.Module):
    """Additive self-attention with the positional biases of Wei et al. (eq. 4-12) over
    padded sequences (B, T, d) -> attention outputs (B, T, d) and weights (B, T, T).

    self_disabled_mask (bool): M, no token attends to itself.
    relative_position (bool): P, the token-specific relative-position bias.
    gaussian (bool): G, the distance-aware Gaussian bias.
    max_distance (int): r, relative distances are clipped to [-r, r] for P.
    window (float): k, the Gaussian's standard deviation is k / 2.
    position_weight (float): alpha2, the weight of P.
    gaussian_weight (float): alpha3, the weight of G.
    """

    # made by resize (annotations only: resize tests hasattr(self, "query"))
    query: nn.Linear
    key: nn.Linear
    score: nn.Linear

    def __init__(
        self,
        *,
        self_disabled_mask: bool,
        relative_position: bool,
        gaussian: bool,
        max_distance: int,
        window: float,
        position_weight: float,
        gaussian_weight: float,
    ) -> None:
        super().__init__()
        if max_distance < 0:
            raise ValueError(f"max_distance (r) must be >= 0, got {max_distance}")
        if window <= 0:
            raise ValueError(f"window (k) must be > 0, got {window}")
        self.self_disabled_mask = self_disabled_mask
        self.relative_position = relative_position
        self.gaussian = gaussian
        self.max_distance = max_distance
        self.window = window
        self.position_weight = position_weight
        self.gaussian_weight = gaussian_weight
        self.resize(1)

    @property
    def width(self) -> int:
        return self.query.in_features

    def resize(self, width: int) -> None:
        """Give the layer width-d inputs; its weights start afresh if d changes."""
        if hasattr(self, "query") and self.width == width:
            return
        device = self.query.weight.device if hasattr(self, "query") else None
        self.query = init_linear_(nn.Linear(width, width, bias=False, device=device))  # W1
        self.key = init_linear_(nn.Linear(width, width, device=device))  # W2 and b
        self.score = init_linear_(nn.Linear(width, 1, bias=False, device=device))  # w
        if self.relative_position:
            self.distance_embed = nn.Parameter(
                torch.empty(2 * self.max_distance + 1, width, device=device)
            )  # W3
            nn.init.xavier_uniform_(self.distance_embed)

    def distances(self, T: int, device) -> torch.Tensor:
        """(T, T) i - j."""
        steps = torch.arange(T, device=device)
        return steps[:, None] - steps[None, :]

    def positional_bias(self, x: torch.Tensor) -> torch.Tensor:
        """alpha2 P + alpha3 G (B, T, T) for inputs x (B, T, d); zeros when both are off."""
        B, T, _ = x.shape
        bias = x.new_zeros((B, T, T))
        distance = self.distances(T, x.device)
        if self.relative_position:
            per_distance = x @ self.distance_embed.t()  # (B, T, 2r + 1): x_i . W3[q]
            index = distance.clamp(-self.max_distance, self.max_distance) + self.max_distance
            bias = bias + self.position_weight * per_distance.gather(2, index.expand(B, T, T))
        if self.gaussian:
            epsilon = self.window / 2
            bias = bias - self.gaussian_weight * distance.to(x.dtype) ** 2 / (2 * epsilon**2)
        return bias

    def scores(self, x: torch.Tensor, allowed: Optional[torch.Tensor] = None) -> torch.Tensor:
        """f(x_i, x_j) (B, T, T): the additive score plus alpha2 P + alpha3 G where allowed
        (B, T, T) is True (everywhere when None), MASKED elsewhere."""
        B, T, _ = x.shape
        if allowed is None:
            allowed = torch.ones((B, T, T), dtype=torch.bool, device=x.device)
        if int(allowed.sum()) >= DENSE_FILL * B * T * T:
            additive = self._additive_dense(x)
        else:
            additive = self._additive_packed(x, allowed)
        return (additive + self.positional_bias(x)).masked_fill(~allowed, MASKED)

    def _additive_dense(self, x: torch.Tensor) -> torch.Tensor:
        """w . tanh(W1 x_i + W2 x_j + b) for every pair (B, T, T)."""
        return self.score(
            torch.tanh(self.query(x)[:, :, None, :] + self.key(x)[:, None, :, :])
        ).squeeze(-1)

    def _additive_packed(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """w . tanh(W1 x_i + W2 x_j + b) (B, T, T) for the allowed pairs, 0 elsewhere: the
        projections run over the tokens of allowed pairs, the (d,)-wide hidden layer
        over the allowed pairs only."""
        B, T, d = x.shape
        b, i, j = allowed.nonzero(as_tuple=True)
        tokens = (allowed.any(2) | allowed.any(1)).flatten().nonzero().squeeze(1)
        packed = torch.zeros(B * T, dtype=torch.long, device=x.device)
        packed[tokens] = torch.arange(len(tokens), device=x.device)
        x_tokens = x.reshape(B * T, d).index_select(0, tokens)
        queries = self.query(x_tokens).index_select(0, packed[b * T + i])
        keys = self.key(x_tokens).index_select(0, packed[b * T + j])
        additive = self.score(torch.tanh(queries + keys)).squeeze(-1)
        return x.new_zeros((B, T, T)).index_put((b, i, j), additive)

    def allowed(self, lengths: torch.Tensor, T: int) -> torch.Tensor:
        """(B, T, T) True where query i may attend to key j: both within the sequence,
        and i != j when the self-disabled mask is on."""
        valid = torch.arange(T, device=lengths.device)[None, :] < lengths[:, None]
        allowed = valid[:, :, None] & valid[:, None, :]
        if self.self_disabled_mask:
            allowed = allowed & ~torch.eye(T, dtype=torch.bool, device=lengths.device)
        return allowed

    def weights(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """a_i(j) (B, T, T): each query's softmax over its allowed keys; zero elsewhere."""
        allowed = self.allowed(lengths.to(x.device), x.shape[1])
        return (
            torch.softmax(self.scores(x, allowed), dim=-1) * allowed
        )  # rows with no allowed key become 0

    def forward(self, x: torch.Tensor, lengths: torch.Tensor):
        weights = self.weights(x, lengths)
        return weights @ x, weights


class ContextFusion(nn.Module):
    """The self-attentional context fusion layer (eq. 13-15) over padded sequences
    (S, T, d) -> (S, T, d), run in length-sorted groups of group_size sequences: each
    group is padded only to its own longest, and the attention's (pairs, d) hidden
    layer stays bounded when a large batch is predicted.

    attention (PositionAwareSelfAttention): the attention over the layer's input.
    dropout (float): dropout on the attention output s_i.
    group_size (int): sequences per length-sorted group.
    """

    def __init__(
        self, attention: PositionAwareSelfAttention, dropout: float, group_size: int = 32
    ) -> None:
        super().__init__()
        self.attention = attention
        self.dropout = Dropout(dropout)
        self.group_size = group_size
        self.keep_attention = False  # set by spacy_lmcrf.attention to look at the weights
        self.last_attention: Optional[torch.Tensor] = None
        self.resize(1)

    @property
    def width(self) -> int:
        return self.attention.width

    def resize(self, width: int) -> None:
        """Give the layer width-d inputs; its weights start afresh if d changes."""
        if hasattr(self, "transform1") and self.width == width:
            return
        self.attention.resize(width)
        device = self.attention.query.weight.device
        self.transform1 = init_linear_(nn.Linear(width, width, device=device))  # W(z1), b
        self.transform2 = init_linear_(nn.Linear(width, width, bias=False, device=device))  # W(z2)
        self.gate_input = init_linear_(nn.Linear(width, width, bias=False, device=device))  # W(f1)
        self.gate_context = init_linear_(
            nn.Linear(width, width, bias=False, device=device)
        )  # W(f2)
        self.gate = init_linear_(nn.Linear(width, width, bias=False, device=device))  # W(f3)

    def resize_to_state_dict(self, state, prefix: str = "") -> None:
        self.resize(state[prefix + "attention.query.weight"].shape[1])

    def forward(self, x: torch.Tensor, lengths_cpu: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        groups = length_groups(lengths_cpu, self.group_size)
        fused, weights = [], []
        for group in groups:
            lengths = lengths_cpu[group]
            group_T = int(lengths.max())
            group_fused, group_weights = self._fuse(x[group.to(x.device), :group_T], lengths)
            fused.append(nn.functional.pad(group_fused, (0, 0, 0, T - group_T)))
            if self.keep_attention:
                weights.append(
                    nn.functional.pad(group_weights.detach(), (0, T - group_T, 0, T - group_T))
                )
        order = (torch.cat(groups).to(x.device),)
        if self.keep_attention:
            self.last_attention = x.new_zeros((x.shape[0], T, T)).index_put(
                order, torch.cat(weights)
            )
        return torch.zeros_like(x).index_put(order, torch.cat(fused))

    def _fuse(self, x: torch.Tensor, lengths: torch.Tensor):
        B, T, d = x.shape
        attended, weights = self.attention(x, lengths)
        valid = torch.arange(T, device=x.device)[None, :] < lengths.to(x.device)[:, None]
        tokens = valid.flatten().nonzero().squeeze(1)  # the layers below run over real tokens only
        x_tokens = x.reshape(B * T, d).index_select(0, tokens)
        attended = self.dropout(attended.reshape(B * T, d).index_select(0, tokens))
        context = torch.tanh(self.transform2(torch.tanh(self.transform1(attended))))
        gate = torch.sigmoid(
            self.gate(torch.tanh(self.gate_input(x_tokens) + self.gate_context(context)))
        )
        fused = gate * x_tokens + (1 - gate) * context
        return x.new_zeros((B * T, d)).index_copy(0, tokens, fused).view(B, T, d), weights
