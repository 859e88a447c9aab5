"""Batched linear-chain CRF in torch.

Potentials are a (B, T, L, L) tensor: ``pots[b, t, i, j]`` is the log-score of
tag ``i`` at position ``t - 1`` followed by tag ``j`` at position ``t``,
including the emission score of position ``t``. At ``t = 0`` only row 0 is read.
End scores are already included at position ``lengths[b] - 1``. Positions
``t >= lengths[b]`` are ignored (no effect on results, zero gradient).

Log-space computations run in float32 (float64 inputs stay float64), and
disallowed things get the finite score ``NEG_INF`` instead of ``-inf``.
"""

from typing import Optional, Tuple, Union

import numpy
import torch
from torch import Tensor, nn

NEG_INF = -10000.0

BoolArray = Union[Tensor, numpy.ndarray]


def _as_float(pots: Tensor) -> Tensor:
    if pots.dtype in (torch.float32, torch.float64):
        return pots
    return pots.float()


def _valid_mask(lengths: Tensor, n_steps: int) -> Tensor:
    """Bool (B, T): True at positions t < lengths[b]."""
    steps = torch.arange(n_steps, device=lengths.device)
    return steps[None, :] < lengths[:, None]


def _prepare(pots: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
    """Cast pots and zero out padding. Returns (pots, valid (B, T))."""
    assert pots.dim() == 4 and pots.shape[2] == pots.shape[3], pots.shape
    pots = _as_float(pots)
    lengths = lengths.to(device=pots.device, dtype=torch.long)
    assert lengths.shape == (pots.shape[0],), (lengths.shape, pots.shape)
    assert bool(((lengths >= 1) & (lengths <= pots.shape[1])).all()), "lengths must be in [1, T]"
    valid = _valid_mask(lengths, pots.shape[1])
    # torch.where (not multiplication) so that padding gets exactly zero
    # gradient whatever its values.
    pots = torch.where(valid[:, :, None, None], pots, torch.zeros_like(pots))
    return pots, valid


def _forward_scan(pots: Tensor, valid: Tensor) -> Tensor:
    """Forward algorithm on prepared pots, log_alpha (B, T, L).

    Padding steps carry the last valid alpha through unchanged.
    """
    n_steps = pots.shape[1]
    alpha = pots[:, 0, 0, :]
    alphas = [alpha]
    for t in range(1, n_steps):
        step = torch.logsumexp(alpha[:, :, None] + pots[:, t], dim=1)
        alpha = torch.where(valid[:, t, None], step, alpha)
        alphas.append(alpha)
    return torch.stack(alphas, dim=1)


def log_partition(pots: Tensor, lengths: Tensor, tag_mask: Optional[Tensor] = None) -> Tensor:
    """Log-sum of the scores of all tag sequences, (B,).

    tag_mask: optional bool (B, T, L); tags where it is False are forbidden.
    """
    pots, valid = _prepare(pots, lengths)
    if tag_mask is not None:
        pots = restrict_tags(pots, tag_mask)
    # Padding steps carry alpha through, so the last one is at lengths - 1.
    return torch.logsumexp(_forward_scan(pots, valid)[:, -1], dim=-1)


def restrict_tags(pots: Tensor, tag_mask: Tensor) -> Tensor:
    """Pots in which tag j at position t scores NEG_INF more where tag_mask[b, t, j]
    is False, so that every sequence using it is (practically) impossible.

    tag_mask: bool (B, T, L).
    """
    pots = _as_float(pots)
    tag_mask = tag_mask.to(device=pots.device, dtype=torch.bool)
    penalty = torch.where(tag_mask, 0.0, NEG_INF).to(pots.dtype)
    return pots + penalty[:, :, None, :]


def gold_tag_mask(gold: Tensor, n_tags: int) -> Tensor:
    """Bool (B, T, L): one-hot for known gold tags, all True where gold is -1."""
    known = gold >= 0
    one_hot = nn.functional.one_hot(gold.clamp(min=0), n_tags).bool()
    return one_hot | ~known[:, :, None]


def crf_loss(pots: Tensor, lengths: Tensor, gold: Tensor, cost: float = 0.0) -> Tensor:
    """Per-sequence loss (B,): logZ(cost-augmented pots) - logZ(gold-consistent).

    With cost == 0 this is the negative log-likelihood of the observed tags
    (missing tags, gold == -1, are marginalised). With cost > 0 it is the
    softmax-margin loss with Hamming cost on the positions with known gold.
    """
    n_tags = pots.shape[-1]
    gold = gold.to(device=pots.device, dtype=torch.long)
    mask = gold_tag_mask(gold, n_tags)
    gold_logz = log_partition(pots, lengths, tag_mask=mask)
    if cost != 0.0:
        known = (gold >= 0)[:, :, None]
        # mask is one-hot at known positions, so ~mask marks j != gold there.
        aug = (known & ~mask).to(_as_float(pots).dtype) * cost
        pots = _as_float(pots) + aug[:, :, None, :]
    return log_partition(pots, lengths) - gold_logz


def viterbi(pots: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
    """Best tag sequences (B, T), padding filled with 0, and their scores (B,)."""
    pots, valid = _prepare(pots, lengths)
    n_batch, n_steps, n_tags, _ = pots.shape
    identity = torch.arange(n_tags, device=pots.device).expand(n_batch, n_tags)
    score = pots[:, 0, 0, :]
    backpointers = [identity]
    for t in range(1, n_steps):
        best, prev = (score[:, :, None] + pots[:, t]).max(dim=1)
        step_valid = valid[:, t, None]
        score = torch.where(step_valid, best, score)
        # Identity backpointers at padding carry the final tag back to the
        # last valid position.
        backpointers.append(torch.where(step_valid, prev, identity))
    best_score, tag = score.max(dim=-1)
    tags = [tag]
    for t in range(n_steps - 1, 0, -1):
        tag = backpointers[t].gather(1, tag[:, None]).squeeze(1)
        tags.append(tag)
    path = torch.stack(tags[::-1], dim=1)
    path = torch.where(valid, path, torch.zeros_like(path))
    return path, best_score


def kbest_viterbi(pots: Tensor, lengths: Tensor, k: int) -> Tuple[Tensor, Tensor]:
    """The k best tag sequences (B, k, T), best first, padding filled with 0, and their
    scores (B, k); a sequence has fewer than k tag sequences when L ** length < k, and
    the ranks beyond them score -inf (their tags are meaningless).

    List Viterbi: each (position, tag) keeps the k best partial sequences ending there,
    each extended from one (previous tag, rank) entry, so the k sequences are distinct.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    pots, valid = _prepare(pots, lengths)
    n_batch, n_steps, n_tags, _ = pots.shape
    device = pots.device
    # score[b, j, r]: the r-th best partial sequence ending in tag j
    score = torch.full((n_batch, n_tags, k), float("-inf"), dtype=pots.dtype, device=device)
    score[:, :, 0] = pots[:, 0, 0, :]
    identity_tag = torch.arange(n_tags, device=device)[None, :, None].expand(n_batch, n_tags, k)
    identity_rank = torch.arange(k, device=device)[None, None, :].expand(n_batch, n_tags, k)
    backpointers = []
    for t in range(1, n_steps):
        # candidates (B, L_prev * k, L): previous (tag, rank) extended by each tag
        candidates = (score[:, :, :, None] + pots[:, t, :, None, :]).reshape(n_batch, -1, n_tags)
        best, index = candidates.topk(k, dim=1)  # (B, k, L), as L_prev * k >= k
        best, index = best.transpose(1, 2), index.transpose(1, 2)  # (B, L, k)
        step_valid = valid[:, t, None, None]
        score = torch.where(step_valid, best, score)
        # identity backpointers at padding carry each entry back unchanged
        backpointers.append(
            (
                torch.where(step_valid, index // k, identity_tag),
                torch.where(step_valid, index % k, identity_rank),
            )
        )
    best_scores, final = score.reshape(n_batch, -1).topk(k, dim=1)  # (B, k)
    tag, entry = final // k, final  # entry: tag * k + rank, the flat index into (L, k)
    tags = [tag]
    for prev_tag, prev_rank in reversed(backpointers):
        tag = prev_tag.reshape(n_batch, -1).gather(1, entry)
        entry = tag * k + prev_rank.reshape(n_batch, -1).gather(1, entry)
        tags.append(tag)
    paths = torch.stack(tags[::-1], dim=2)  # (B, k, T)
    paths = torch.where(valid[:, None, :], paths, torch.zeros_like(paths))
    return paths, best_scores


def forward_backward(pots: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Return log_alpha (B, T, L), log_beta (B, T, L) and logZ (B,).

    log_alpha includes the pots at t, log_beta excludes them and is 0 at the
    last valid position. Both are 0 at padding positions.
    """
    pots, valid = _prepare(pots, lengths)
    n_steps = pots.shape[1]
    log_alpha = _forward_scan(pots, valid)
    log_z = torch.logsumexp(log_alpha[:, -1], dim=-1)
    beta = torch.zeros_like(pots[:, 0, 0, :])
    betas = [beta]
    for t in range(n_steps - 2, -1, -1):
        step = torch.logsumexp(pots[:, t + 1] + beta[:, None, :], dim=2)
        beta = torch.where(valid[:, t + 1, None], step, torch.zeros_like(step))
        betas.append(beta)
    log_beta = torch.stack(betas[::-1], dim=1)
    valid3 = valid[:, :, None]
    log_alpha = torch.where(valid3, log_alpha, torch.zeros_like(log_alpha))
    return log_alpha, log_beta, log_z


def marginals(pots: Tensor, lengths: Tensor) -> Tuple[Tensor, Tensor]:
    """Unary (B, T, L) and pairwise (B, T, L, L) posterior marginals.

    pairwise[b, t, i, j] = P(y[t-1] = i, y[t] = j); it is 0 at t = 0 and at
    padding, as is unary at padding.
    """
    log_alpha, log_beta, log_z = forward_backward(pots, lengths)
    pots, valid = _prepare(pots, lengths)
    log_z = log_z[:, None, None]
    unary = torch.exp(log_alpha + log_beta - log_z)
    unary = torch.where(valid[:, :, None], unary, torch.zeros_like(unary))
    log_pair = (log_alpha[:, :-1, :, None] + pots[:, 1:] + log_beta[:, 1:, None, :]) - log_z[
        :, :, None
    ]
    pair = torch.exp(log_pair)
    pair = torch.where(valid[:, 1:, None, None], pair, torch.zeros_like(pair))
    pairwise = torch.cat([torch.zeros_like(pots[:, :1]), pair], dim=1)
    return unary, pairwise


def chunk_log_prob(
    pots: Tensor,
    log_alpha: Tensor,
    log_beta: Tensor,
    logZ: Tensor,
    lengths: Tensor,
    batch_index: Tensor,
    start: Tensor,
    end: Tensor,
    chunk_tags: Tensor,
    opens_first: Tensor,
    opens: Tensor,
    closes: Tensor,
) -> Tensor:
    """log P(one chunk covers exactly y[start:end]) for N queries at once, (N,).

    A chunk is what a tag scheme decodes to: it opens at start (opens_first at the
    first position, else opens[y[start - 1], y[start]]), no boundary falls inside it
    (not closes[y[t - 1], y[t]]) and it closes at end (closes[y[end - 1], y[end]],
    or end is the sequence's length). Every tag inside it is one of chunk_tags, so
    the chunk's label is fixed by them. The sum runs over all tag sequences, so
    in IOB1 the tag before an I- start and in IOB schemes the tag after the end
    are marginalised under exactly the condition that keeps the chunk whole.

    pots, log_alpha, log_beta, logZ, lengths: as forward_backward takes and returns them.
    batch_index, start, end (Tensor): (N,) sequence and [start, end) of each query.
    chunk_tags (Tensor): (N, P) long, the tags a token of the chunk may carry; -1 pads.
    opens_first (Tensor): (L,) bool. opens, closes (Tensor): (L, L) bool.
    """
    pots = _as_float(pots)
    device = pots.device
    n_steps, n_tags = pots.shape[1], pots.shape[2]

    def as_long(x: Tensor) -> Tensor:
        return x.to(device=device, dtype=torch.long)

    def penalty(allowed: Tensor) -> Tensor:
        return torch.where(allowed, 0.0, NEG_INF).to(pots.dtype)

    b, start, end = as_long(batch_index), as_long(start), as_long(end)
    opens_first, opens, closes = (
        x.to(device=device, dtype=torch.bool) for x in (opens_first, opens, closes)
    )
    tag_ok = as_long(chunk_tags) >= 0
    tags = as_long(chunk_tags).clamp(min=0)
    rows = torch.arange(n_tags, device=device)[None, :, None]
    cols = rows.transpose(1, 2)
    b3, tags_col, tags_row = b[:, None, None], tags[:, None, :], tags[:, :, None]
    # first tag of the chunk (N, P), opened at the sequence start or after any tag
    at_first = pots[b[:, None], 0, 0, tags] + penalty(opens_first[tags])
    before = log_alpha[b, (start - 1).clamp(min=0)][:, :, None]
    into = pots[b3, start[:, None, None], rows, tags_col] + penalty(opens[rows, tags_col])
    after_any = torch.logsumexp(before + into, dim=1)
    score = torch.where((start == 0)[:, None], at_first, after_any) + penalty(tag_ok)
    # inside the chunk (N, P) -> (N, P)
    inside = penalty(~closes[tags_row, tags_col] & tag_ok[:, None, :])
    n_inside = end - start
    for m in range(1, int(n_inside.max()) if n_inside.numel() else 0):
        pos = (start + m).clamp(max=n_steps - 1)[:, None, None]
        step = torch.logsumexp(
            score[:, :, None] + pots[b3, pos, tags_row, tags_col] + inside, dim=1
        )
        score = torch.where((m < n_inside)[:, None], step, score)
    # the chunk closes before the next tag, or the sequence ends
    last = log_beta[b[:, None], (end - 1)[:, None], tags]
    at_end = torch.logsumexp(score + last, dim=1)
    nxt = end.clamp(max=n_steps - 1)[:, None, None]
    out = pots[b3, nxt, tags_row, cols] + penalty(closes[tags_row, cols])
    out = out + log_beta[b, nxt[:, 0, 0]][:, None, :]
    closed = torch.logsumexp(score[:, :, None] + out, dim=(1, 2))
    is_last = end >= as_long(lengths)[b]
    return torch.where(is_last, at_end, closed) - logZ[b]
