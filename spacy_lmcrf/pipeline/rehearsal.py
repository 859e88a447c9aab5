"""Rehearsal (nlp.resume_training() + nlp.rehearse()): keep a CRF's distribution close to
the one of the copy made when training resumed, so that new training does not make it
forget what it knew (spaCy's "catastrophic forgetting" remedy)."""

from typing import Any, Callable, List, Tuple

import torch

from ..ml.crf import log_partition, marginals
from ..ml.models.crf_tagger import CRFScores


def rehearsal_loss(scores: CRFScores, teacher: CRFScores) -> Tuple[float, List[torch.Tensor]]:
    """KL(teacher || model) of the two CRFs' tag-sequence distributions, summed over the
    segments, and its gradient with respect to the model's potentials (one tensor per
    group): exactly the model's marginals minus the teacher's, as the teacher's entropy
    does not depend on the model. Both scores must come from the same docs."""
    if [group.rows for group in scores.groups] != [group.rows for group in teacher.groups]:
        raise ValueError(
            "rehearsal: the model and its rehearsal copy cut the docs into different "
            "segments; the copy must have the model's architecture and settings."
        )
    total, gradients = 0.0, []
    for group, tutor in zip(scores.groups, teacher.groups):
        lengths = group.lengths
        tutor_pots = tutor.potentials.detach().double()
        unary, pairwise = marginals(tutor_pots, lengths)
        pots = group.potentials.detach().double().requires_grad_()
        with torch.enable_grad():
            expected = _expected_score(pots, unary, pairwise, lengths)
            cross_entropy = log_partition(pots, lengths) - expected
            entropy = log_partition(tutor_pots, lengths) - _expected_score(
                tutor_pots, unary, pairwise, lengths
            )
            loss = (cross_entropy - entropy).sum()
            loss.backward()
        assert pots.grad is not None  # loss.backward() set it
        total += float(loss.detach())
        gradients.append(pots.grad.to(group.potentials.dtype))
    return total, gradients


def _expected_score(
    pots: torch.Tensor, unary: torch.Tensor, pairwise: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    """E[score of the tag sequence] under the marginals, per segment (B,): the start
    potentials (row 0 at t = 0) under the unary marginals, the others under the pairwise
    ones (zero at t = 0 and at padding)."""
    steps = torch.arange(pots.shape[1], device=pots.device)
    valid = (steps[None, :] < lengths.to(pots.device)[:, None])[:, :, None, None]
    pots = torch.where(valid, pots, torch.zeros_like(pots))
    start = (unary[:, 0, :] * pots[:, 0, 0, :]).sum(dim=-1)
    return start + (pairwise[:, 1:] * pots[:, 1:]).sum(dim=(1, 2, 3))


class HandOverGradients:
    """An optimizer callable that hands another one copies of the gradients and zeroes
    the originals. Language.rehearse passes a callable that only collects (weights,
    gradient) pairs, and steps them after every component's rehearse: by then a torch
    module's gradients, which the collected arrays are views of, were zeroed in place,
    and the step would do nothing. The weights stay views, so the step moves them."""

    def __init__(self, collect: Callable[..., Any]) -> None:
        self.collect = collect
        for name in ("learn_rate", "b1", "b2"):
            if hasattr(collect, name):
                setattr(self, name, getattr(collect, name))

    def __call__(self, key, weights, gradient, **kwargs):
        handed_over = gradient.copy()
        gradient *= 0
        return self.collect(key, weights, handed_over, **kwargs)
