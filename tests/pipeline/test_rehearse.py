"""rehearse(): after nlp.resume_training(), keep the CRF's distribution close to the copy's."""

import itertools

import pytest
import torch
from spacy.training import Example
from thinc.api import SGD

from spacy_lmcrf.ml.crf import marginals
from spacy_lmcrf.ml.models.crf_tagger import CRFGroup, CRFScores
from spacy_lmcrf.pipeline.rehearsal import rehearsal_loss

from ..util import make_nlp, ner_examples, train

pytestmark = pytest.mark.usefixtures("single_torch_thread")

REHEARSAL_TEXTS = ["Peter Blackburn lives in Berlin .", "The European Commission said on Thursday"]


def _scores(pots: torch.Tensor, lengths) -> CRFScores:
    lengths_t = torch.tensor(lengths)
    segments = [(i, 0, n) for i, n in enumerate(lengths)]
    group = CRFGroup(pots, lengths_t, list(range(len(lengths))))
    return CRFScores([group], segments, list(lengths))


def _log_probs(pots: torch.Tensor, length: int, n_tags: int) -> torch.Tensor:
    seqs = list(itertools.product(range(n_tags), repeat=length))
    scores = []
    for seq in seqs:
        score = pots[0, 0, seq[0]]
        for t in range(1, length):
            score = score + pots[t, seq[t - 1], seq[t]]
        scores.append(score)
    return torch.log_softmax(torch.stack(scores), 0)


def test_rehearsal_loss_is_kl_and_its_gradient_the_marginal_difference():
    gen = torch.Generator().manual_seed(0)
    lengths = [3, 1, 2]
    student = torch.randn(3, 3, 3, 3, generator=gen, dtype=torch.float64)
    teacher = torch.randn(3, 3, 3, 3, generator=gen, dtype=torch.float64)
    loss, (grad,) = rehearsal_loss(_scores(student, lengths), _scores(teacher, lengths))
    expected = 0.0
    for b, n in enumerate(lengths):
        log_p, log_q = _log_probs(teacher[b], n, 3), _log_probs(student[b], n, 3)
        expected += float((log_p.exp() * (log_p - log_q)).sum())
    assert loss == pytest.approx(expected, abs=1e-9)
    lengths_t = torch.tensor(lengths)
    (u_s, p_s), (u_t, p_t) = marginals(student, lengths_t), marginals(teacher, lengths_t)
    assert torch.allclose(grad[:, 1:], (p_s - p_t)[:, 1:], atol=1e-9)
    assert torch.allclose(grad[:, 0, 0], (u_s - u_t)[:, 0], atol=1e-9)
    assert bool((grad[:, 0, 1:] == 0).all())
    assert bool((grad[1, 1:] == 0).all()) and bool((grad[2, 2:] == 0).all())  # padding


def _weights(nlp):
    module = nlp.get_pipe("lm_crf_ner").model.get_ref("crf_head").shims[0]._model
    return [p.detach().clone() for p in module.parameters()]


@pytest.mark.slow
def test_nlp_rehearse_keeps_the_model_near_its_copy():
    nlp = make_nlp("lm_crf_ner")
    train(nlp, ner_examples(nlp), 10)
    raw = [Example.from_dict(nlp.make_doc(text), {}) for text in REHEARSAL_TEXTS]
    # no copy without resume_training: nothing changes, as for spaCy's components
    before = _weights(nlp)
    assert nlp.rehearse(raw) == {"lm_crf_ner": 0.0}
    assert all(torch.equal(a, b) for a, b in zip(before, _weights(nlp)))

    optimizer = nlp.resume_training()
    # the model is its copy: zero loss
    assert nlp.rehearse(raw, sgd=optimizer)["lm_crf_ner"] == pytest.approx(0.0, abs=1e-6)
    # new training moves the model away from the copy ...
    shifted = [
        Example.from_dict(nlp.make_doc(t), {"entities": [(0, len(t.split()[0]), "ORG")]})
        for t in REHEARSAL_TEXTS
    ]
    for _ in range(5):
        nlp.update(shifted, sgd=optimizer)
    # ... and rehearsal moves it back: the KL falls, through nlp.rehearse's gradient
    # collector (plain SGD: Adam's momentum from the updates would first carry it on)
    plain_sgd = SGD(0.05)
    kls = [nlp.rehearse(raw, sgd=plain_sgd)["lm_crf_ner"] for _ in range(6)]
    assert kls[0] > 0.1
    assert max(kls[1:]) < 0.3 * kls[0]
