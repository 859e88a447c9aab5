import itertools
from typing import List, Optional, Sequence

import numpy
import pytest
import torch

from spacy_lmcrf.ml.crf import (
    NEG_INF,
    crf_loss,
    forward_backward,
    gold_tag_mask,
    kbest_viterbi,
    log_partition,
    marginals,
    viterbi,
)
from spacy_lmcrf.ml.modules.crf_potentials import CRFPotentials

N_TAGS = 3
LENGTHS = [4, 2, 1]
MAX_T = 4


pytestmark = pytest.mark.usefixtures("single_torch_thread")


def _random_pots(seed: int = 0, dtype=torch.float64, scale: float = 1.0):
    gen = torch.Generator().manual_seed(seed)
    pots = torch.randn(len(LENGTHS), MAX_T, N_TAGS, N_TAGS, generator=gen, dtype=dtype)
    return pots * scale, torch.tensor(LENGTHS)


def _sequences(length: int, n_tags: int = N_TAGS) -> List[tuple]:
    return list(itertools.product(range(n_tags), repeat=length))


def _score(pots_b: torch.Tensor, seq: Sequence[int]) -> torch.Tensor:
    score = pots_b[0, 0, seq[0]]
    for t in range(1, len(seq)):
        score = score + pots_b[t, seq[t - 1], seq[t]]
    return score


def _all_scores(pots_b: torch.Tensor, length: int, n_tags: int = N_TAGS):
    seqs = _sequences(length, n_tags)
    return seqs, torch.stack([_score(pots_b, s) for s in seqs])


def _consistent(seq: Sequence[int], gold_b: Sequence[int]) -> bool:
    return all(g < 0 or g == y for y, g in zip(seq, gold_b))


def _hamming(seq: Sequence[int], gold_b: Sequence[int]) -> int:
    return sum(1 for y, g in zip(seq, gold_b) if g >= 0 and g != y)


def _brute_loss(pots, lengths, gold, cost: float = 0.0) -> torch.Tensor:
    losses = []
    for b, length in enumerate(lengths.tolist()):
        seqs, scores = _all_scores(pots[b], length)
        gold_b = gold[b, :length].tolist()
        aug = torch.tensor([cost * _hamming(s, gold_b) for s in seqs], dtype=pots.dtype)
        keep = torch.tensor([_consistent(s, gold_b) for s in seqs])
        losses.append(torch.logsumexp(scores + aug, 0) - torch.logsumexp(scores[keep], 0))
    return torch.stack(losses)


def _brute_pairwise(pots, lengths, mask: Optional[torch.Tensor] = None):
    """Brute-force (unary, pairwise) marginals, with an optional tag mask."""
    unary = torch.zeros(pots.shape[:3], dtype=torch.float64)
    pairwise = torch.zeros(pots.shape, dtype=torch.float64)
    for b, length in enumerate(lengths.tolist()):
        seqs, scores = _all_scores(pots[b], length)
        if mask is not None:
            ok = [all(mask[b, t, y] for t, y in enumerate(s)) for s in seqs]
            scores = torch.where(torch.tensor(ok), scores, torch.tensor(-1e30, dtype=scores.dtype))
        probs = torch.softmax(scores, 0)
        for seq, p in zip(seqs, probs):
            for t, y in enumerate(seq):
                unary[b, t, y] += p
                if t > 0:
                    pairwise[b, t, seq[t - 1], y] += p
    return unary, pairwise


def _gold() -> torch.Tensor:
    return torch.tensor([[0, 2, 1, 1], [1, 0, -1, -1], [2, -1, -1, -1]])


def _partial_gold() -> torch.Tensor:
    return torch.tensor([[0, -1, 1, -1], [-1, 0, -1, -1], [-1, -1, -1, -1]])


def test_log_partition_brute_force():
    pots, lengths = _random_pots()
    expected = torch.stack(
        [torch.logsumexp(_all_scores(pots[b], n)[1], 0) for b, n in enumerate(LENGTHS)]
    )
    torch.testing.assert_close(log_partition(pots, lengths), expected)


def test_log_partition_reads_only_row_zero_at_start():
    pots, lengths = _random_pots()
    changed = pots.clone()
    changed[:, 0, 1:, :] = 50.0
    torch.testing.assert_close(log_partition(changed, lengths), log_partition(pots, lengths))


def test_log_partition_tag_mask():
    pots, lengths = _random_pots(1)
    gen = torch.Generator().manual_seed(3)
    mask = torch.rand(len(LENGTHS), MAX_T, N_TAGS, generator=gen) > 0.4
    mask[:, :, 0] = True
    expected = []
    for b, n in enumerate(LENGTHS):
        seqs, scores = _all_scores(pots[b], n)
        ok = torch.tensor([all(bool(mask[b, t, y]) for t, y in enumerate(s)) for s in seqs])
        expected.append(torch.logsumexp(scores[ok], 0))
    torch.testing.assert_close(log_partition(pots, lengths, mask), torch.stack(expected))


def test_float32_and_half_inputs_compute_in_float32():
    pots, lengths = _random_pots()
    for dtype in (torch.float32, torch.float16, torch.bfloat16):
        logz = log_partition(pots.to(dtype), lengths)
        assert logz.dtype == torch.float32
        torch.testing.assert_close(logz.double(), log_partition(pots.to(dtype).double(), lengths))


def test_gold_tag_mask():
    mask = gold_tag_mask(torch.tensor([[1, -1, 0]]), 3)
    expected = torch.tensor([[[False, True, False], [True, True, True], [True, False, False]]])
    assert mask.dtype == torch.bool
    assert torch.equal(mask, expected)


def test_viterbi_brute_force():
    for seed in range(5):
        pots, lengths = _random_pots(seed)
        path, score = viterbi(pots, lengths)
        assert path.shape == (len(LENGTHS), MAX_T) and path.dtype == torch.long
        for b, n in enumerate(LENGTHS):
            seqs, scores = _all_scores(pots[b], n)
            best = int(scores.argmax())
            assert path[b, :n].tolist() == list(seqs[best])
            assert path[b, n:].tolist() == [0] * (MAX_T - n)
            torch.testing.assert_close(score[b], scores[best])


def test_marginals_brute_force():
    pots, lengths = _random_pots(2)
    unary, pairwise = marginals(pots, lengths)
    exp_unary, exp_pairwise = _brute_pairwise(pots, lengths)
    torch.testing.assert_close(unary, exp_unary)
    torch.testing.assert_close(pairwise, exp_pairwise)
    valid = torch.arange(MAX_T)[None, :] < lengths[:, None]
    torch.testing.assert_close(unary.sum(-1), valid.double())


def test_forward_backward_identity():
    pots, lengths = _random_pots(4)
    log_alpha, log_beta, log_z = forward_backward(pots, lengths)
    torch.testing.assert_close(log_z, log_partition(pots, lengths))
    for b, n in enumerate(LENGTHS):
        assert torch.all(log_beta[b, n - 1] == 0)
        for t in range(n):
            torch.testing.assert_close(
                torch.logsumexp(log_alpha[b, t] + log_beta[b, t], 0), log_z[b]
            )


def test_log_partition_gradient_is_marginals():
    pots, lengths = _random_pots(5)
    pots.requires_grad_(True)
    log_partition(pots, lengths).sum().backward()
    unary, pairwise = marginals(pots.detach(), lengths)
    expected = pairwise.clone()
    expected[:, 0, 0, :] = unary[:, 0]
    torch.testing.assert_close(pots.grad, expected)


@pytest.mark.parametrize("gold_fn", [_gold, _partial_gold])
@pytest.mark.parametrize("cost", [0.0, 1.5])
def test_crf_loss_and_gradient_brute_force(gold_fn, cost):
    pots, lengths = _random_pots(6)
    gold = gold_fn()
    pots1 = pots.clone().requires_grad_(True)
    loss = crf_loss(pots1, lengths, gold, cost=cost)
    pots2 = pots.clone().requires_grad_(True)
    expected = _brute_loss(pots2, lengths, gold, cost=cost)
    torch.testing.assert_close(loss, expected)
    loss.sum().backward()
    expected.sum().backward()
    torch.testing.assert_close(pots1.grad, pots2.grad)
    assert torch.all(loss > -1e-9)


def test_crf_loss_gradient_is_marginal_difference():
    # d loss / d pots = cost-augmented marginals - gold-constrained marginals
    pots, lengths = _random_pots(7)
    gold = _partial_gold()
    cost = 0.7
    pots.requires_grad_(True)
    crf_loss(pots, lengths, gold, cost=cost).sum().backward()
    known = (gold >= 0)[:, :, None]
    aug = (known & ~gold_tag_mask(gold, N_TAGS)).double() * cost
    aug_pots = pots.detach() + aug[:, :, None, :]
    u_aug, p_aug = _brute_pairwise(aug_pots, lengths)
    u_gold, p_gold = _brute_pairwise(pots.detach(), lengths, gold_tag_mask(gold, N_TAGS))
    expected = p_aug - p_gold
    expected[:, 0, 0, :] = u_aug[:, 0] - u_gold[:, 0]
    torch.testing.assert_close(pots.grad, expected)


def test_crf_loss_full_gold_is_nll():
    pots, lengths = _random_pots(8)
    gold = _gold()
    loss = crf_loss(pots, lengths, gold)
    for b, n in enumerate(LENGTHS):
        seqs, scores = _all_scores(pots[b], n)
        gold_score = _score(pots[b], gold[b, :n].tolist())
        torch.testing.assert_close(loss[b], torch.logsumexp(scores, 0) - gold_score)
    torch.testing.assert_close(crf_loss(pots, lengths, gold, cost=0.0), loss)


def test_crf_loss_all_missing_is_zero():
    pots, lengths = _random_pots(9)
    gold = torch.full((len(LENGTHS), MAX_T), -1)
    loss = crf_loss(pots, lengths, gold, cost=2.0)
    torch.testing.assert_close(loss, torch.zeros_like(loss))


def test_padding_independence_and_zero_gradient():
    pots, lengths = _random_pots(10)
    gold = _partial_gold()
    gen = torch.Generator().manual_seed(11)
    garbage = pots.clone()
    valid = torch.arange(MAX_T)[None, :] < lengths[:, None]
    noise = torch.randn(garbage.shape, generator=gen, dtype=garbage.dtype) * 1e4
    garbage = torch.where(valid[:, :, None, None], garbage, noise)
    garbage.requires_grad_(True)
    loss = crf_loss(garbage, lengths, gold, cost=1.0)
    fb = forward_backward(garbage, lengths)
    out = [loss, log_partition(garbage, lengths), *viterbi(garbage, lengths)]
    out += [*marginals(garbage, lengths)]
    (loss.sum() + fb[2].sum() + out[1].sum() + out[5].sum()).backward()
    assert torch.all(garbage.grad[~valid] == 0)
    for b, n in enumerate(LENGTHS):
        alone = pots[b : b + 1, :n]
        length = torch.tensor([n])
        torch.testing.assert_close(
            loss[b : b + 1], crf_loss(alone, length, gold[b : b + 1, :n], cost=1.0)
        )
        torch.testing.assert_close(out[1][b : b + 1], log_partition(alone, length))
        path, score = viterbi(alone, length)
        assert out[2][b, :n].tolist() == path[0].tolist()
        torch.testing.assert_close(out[3][b : b + 1], score)
        unary, pairwise = marginals(alone, length)
        torch.testing.assert_close(out[4][b : b + 1, :n], unary)
        torch.testing.assert_close(out[5][b : b + 1, :n], pairwise)
        alpha, beta, log_z = forward_backward(alone, length)
        torch.testing.assert_close(fb[0][b : b + 1, :n], alpha)
        torch.testing.assert_close(fb[1][b : b + 1, :n], beta)
        torch.testing.assert_close(fb[2][b : b + 1], log_z)


def test_no_nan_edge_cases():
    # length-1 sequences
    pots = torch.randn(2, 1, N_TAGS, N_TAGS)
    lengths = torch.tensor([1, 1])
    gold = torch.tensor([[2], [-1]])
    pots.requires_grad_(True)
    loss = crf_loss(pots, lengths, gold, cost=1.0)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(pots.grad).all()
    path, _ = viterbi(pots, lengths)
    assert path.shape == (2, 1)
    # all tags forbidden but one
    pots, lengths = _random_pots(13, dtype=torch.float32)
    mask = torch.zeros(len(LENGTHS), MAX_T, N_TAGS, dtype=torch.bool)
    mask[:, :, 1] = True
    pots.requires_grad_(True)
    logz = log_partition(pots, lengths, mask)
    logz.sum().backward()
    assert torch.isfinite(logz).all() and torch.isfinite(pots.grad).all()
    # gold inconsistent with a fully forbidden position still stays finite
    mask[:, 1, :] = False
    assert torch.isfinite(log_partition(pots.detach(), lengths, mask)).all()
    # very large potentials
    big, lengths = _random_pots(14, dtype=torch.float32, scale=1e5)
    big.requires_grad_(True)
    loss = crf_loss(big, lengths, _partial_gold(), cost=1.0)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(big.grad).all()
    for out in (
        *forward_backward(big, lengths),
        *marginals(big, lengths),
        *viterbi(big, lengths),
    ):
        assert torch.isfinite(out.double()).all()


# CRFPotentials


def _constraints():
    trans = numpy.ones((N_TAGS, N_TAGS), dtype=bool)
    trans[0, 2] = False
    trans[2, 2] = False
    start = numpy.array([True, False, True])
    end = numpy.array([True, True, False])
    return trans, start, end


@pytest.mark.parametrize("pairwise", ["small", "large"])
def test_potentials_conventions(pairwise):
    torch.manual_seed(0)
    model = CRFPotentials(5, N_TAGS, pairwise=pairwise)
    with torch.no_grad():
        for param in model.parameters():
            param.uniform_(-1, 1)
    x = torch.randn(len(LENGTHS), MAX_T, 5, dtype=torch.float64)
    lengths = torch.tensor(LENGTHS)
    model.double()
    pots = model(x, lengths)
    assert pots.shape == (len(LENGTHS), MAX_T, N_TAGS, N_TAGS)
    assert pots.dtype == torch.float32
    # row broadcast at t = 0
    assert torch.equal(pots[:, 0], pots[:, 0, :1].expand(-1, N_TAGS, -1))
    # end scores at the last valid position only
    end = model.end.detach().float()
    model2 = CRFPotentials(5, N_TAGS, pairwise=pairwise).double()
    model2.load_state_dict(model.state_dict())
    with torch.no_grad():
        model2.end.zero_()
    pots2 = model2(x, lengths)
    for b, n in enumerate(LENGTHS):
        diff = pots[b, :n] - pots2[b, :n]
        torch.testing.assert_close(diff[n - 1], end[None].expand(N_TAGS, -1))
        assert torch.all(diff[: n - 1] == 0)
    # exact structure
    for b, n in enumerate(LENGTHS):
        if pairwise == "small":
            emit = model.emit(x[b]).float()
            trans, start = model.trans.float(), model.start.float()
            expected0 = start + emit[0]
            expected_rest = trans[None] + emit[1:, None, :]
        else:
            out = model.proj(x[b]).float().view(MAX_T, N_TAGS + 1, N_TAGS)
            expected0 = out[0, N_TAGS]
            expected_rest = out[1:, :N_TAGS]
        torch.testing.assert_close(pots2[b, 0, 1], expected0, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(pots2[b, 1:n], expected_rest[: n - 1], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("pairwise", ["small", "large"])
def test_potentials_constraints(pairwise):
    torch.manual_seed(1)
    trans, start, end = _constraints()
    model = CRFPotentials(4, N_TAGS, pairwise=pairwise)
    model.configure(N_TAGS, trans, start, end)
    # emissions strongly favour disallowed tag 2 everywhere, and tag 1 at start
    with torch.no_grad():
        linear = model.emit if pairwise == "small" else model.proj
        linear.weight.zero_()
        bias = torch.zeros(linear.bias.shape)
        if pairwise == "small":
            bias[:] = torch.tensor([0.0, 50.0, 100.0])
        else:
            bias.view(N_TAGS + 1, N_TAGS)[:] = torch.tensor([0.0, 50.0, 100.0])
        linear.bias.copy_(bias)
    x = torch.randn(len(LENGTHS), MAX_T, 4)
    lengths = torch.tensor(LENGTHS)
    pots = model(x, lengths)
    assert torch.all(pots[:, 0, :, 1] < NEG_INF / 2)
    for b, n in enumerate(LENGTHS):
        assert torch.all(pots[b, n - 1, :, 2] < NEG_INF / 2)
        if n > 1:
            assert torch.all(pots[b, 1:n, 0, 2] < NEG_INF / 2)
    path, score = viterbi(pots, lengths)
    for b, n in enumerate(LENGTHS):
        seq = path[b, :n].tolist()
        assert start[seq[0]] and end[seq[-1]]
        assert all(trans[seq[t - 1], seq[t]] for t in range(1, n))
        # equals the brute-force argmax over allowed sequences only
        seqs = [
            s
            for s in _sequences(n)
            if start[s[0]] and end[s[-1]] and all(trans[s[t - 1], s[t]] for t in range(1, n))
        ]
        scores = torch.stack([_score(pots[b].double(), s) for s in seqs])
        assert seq == list(seqs[int(scores.argmax())])
        torch.testing.assert_close(score[b].double(), scores.max(), rtol=1e-6, atol=1e-3)


def test_potentials_configure_and_state_dict_round_trip():
    model = CRFPotentials(6, 9, pairwise="large")
    trans, start, end = _constraints()
    big_trans = numpy.ones((9, 9), dtype=bool)
    big_trans[:3, :3] = trans
    model.configure(9, big_trans, numpy.ones(9, dtype=bool), torch.ones(9, dtype=torch.bool))
    state = model.state_dict()
    for key in ("allowed_transitions", "allowed_start", "allowed_end"):
        assert key in state
    fresh = CRFPotentials(6, 2, pairwise="large")
    fresh.resize_to_state_dict(state)
    assert fresh.n_tags == 9
    fresh.load_state_dict(state)
    assert torch.equal(fresh.allowed_transitions, model.allowed_transitions)
    x = torch.randn(2, 3, 6)
    lengths = torch.tensor([3, 2])
    torch.testing.assert_close(fresh(x, lengths), model(x, lengths))
    for pairwise in ("small", "large"):
        model = CRFPotentials(4, 3, pairwise=pairwise).double()
        model.configure(5)
        assert model.n_tags == 5
        assert model.allowed_transitions.shape == (5, 5)
        assert all(p.dtype == torch.float64 for p in model.parameters())
        assert all(p.device == torch.device("cpu") for p in model.parameters())
        params = {name: p for name, p in model.named_parameters()}
        model.configure(5, allowed_start=numpy.array([1, 0, 1, 1, 1], dtype=bool))
        assert all(p is params[name] for name, p in model.named_parameters())
        assert not bool(model.allowed_start[1])
        with pytest.raises(ValueError):
            model.configure(5, allowed_end=numpy.ones(4, dtype=bool))


def test_potentials_init():
    model = CRFPotentials(4, 3, pairwise="small")
    assert torch.all(model.trans == 0) and torch.all(model.start == 0)
    assert torch.all(model.end == 0) and torch.all(model.emit.bias == 0)
    assert model.emit.weight.abs().sum() > 0
    with pytest.raises(ValueError):
        CRFPotentials(4, 3, pairwise="medium")


@pytest.mark.parametrize("pairwise", ["small", "large"])
def test_training_sanity(pairwise):
    # BIO-like: token 0 -> O (0), token 1 -> B (1), token 2 -> I (2) after B or
    # I but O after O, so the tag of token 2 depends on the previous tag.
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(0)
    n_vocab, n_batch, n_steps = 3, 32, 6
    tokens = torch.randint(0, n_vocab, (n_batch, n_steps), generator=gen)
    tags = torch.zeros_like(tokens)
    for t in range(n_steps):
        prev = tags[:, t - 1] if t > 0 else torch.zeros_like(tags[:, 0])
        inside = torch.where(prev > 0, 2, 0)
        tags[:, t] = torch.where(tokens[:, t] == 2, inside, tokens[:, t])
    lengths = torch.randint(1, n_steps + 1, (n_batch,), generator=gen)
    valid = torch.arange(n_steps)[None, :] < lengths[:, None]
    gold = torch.where(valid, tags, torch.full_like(tags, -1))
    x = torch.nn.functional.one_hot(tokens, n_vocab).float()
    model = torch.nn.Sequential(torch.nn.Linear(n_vocab, 8), torch.nn.Tanh())
    crf = CRFPotentials(8, 3, pairwise=pairwise, dropout=0.1)
    params = list(model.parameters()) + list(crf.parameters())
    optimizer = torch.optim.Adam(params, lr=0.05)
    for _ in range(100):
        optimizer.zero_grad()
        loss = crf_loss(crf(model(x), lengths), lengths, gold, cost=1.0).mean()
        loss.backward()
        optimizer.step()
    crf.eval()
    with torch.no_grad():
        path, _ = viterbi(crf(model(x), lengths), lengths)
    assert torch.equal(path[valid], tags[valid])


@pytest.mark.parametrize("k", [1, 2, 5, 30])
def test_kbest_viterbi_brute_force(k):
    """The k best sequences are the k highest-scoring ones of an exhaustive enumeration,
    distinct, best first, each with its own score; beyond the L ** length sequences a
    row has, the ranks score -inf."""
    pots, lengths = _random_pots(seed=3)
    paths, scores = kbest_viterbi(pots, lengths, k)
    assert paths.shape == (len(LENGTHS), k, MAX_T) and scores.shape == (len(LENGTHS), k)
    for b, length in enumerate(lengths.tolist()):
        seqs, all_scores = _all_scores(pots[b], length)
        expected = all_scores.sort(descending=True).values[:k]
        n_real = min(k, len(seqs))
        assert torch.allclose(scores[b, :n_real], expected, atol=1e-9)
        assert bool(torch.isneginf(scores[b, n_real:]).all())
        found = [tuple(paths[b, r, :length].tolist()) for r in range(n_real)]
        assert len(set(found)) == n_real
        for r, seq in enumerate(found):
            assert float(_score(pots[b], seq)) == pytest.approx(float(scores[b, r]), abs=1e-9)
        assert bool((paths[b, :, length:] == 0).all())


def test_kbest_viterbi_first_is_viterbi():
    pots, lengths = _random_pots(seed=4)
    best, best_score = viterbi(pots, lengths)
    paths, scores = kbest_viterbi(pots, lengths, 3)
    assert torch.equal(paths[:, 0], best)
    assert torch.allclose(scores[:, 0], best_score)
    with pytest.raises(ValueError, match="k must be"):
        kbest_viterbi(pots, lengths, 0)
