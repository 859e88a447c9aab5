from itertools import islice

import numpy
import pytest
import torch
from spacy.util import registry

from spacy_lmcrf.training.dev_scores import claim_listeners
from spacy_lmcrf.training.optimizers import clip_gradient_norm

from ..util import make_nlp, ner_examples


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_sgd_matches_torch(nesterov):
    rng = numpy.random.default_rng(0)
    start = rng.normal(size=(4, 3)).astype("float32")
    grads = [rng.normal(size=(4, 3)).astype("float32") for _ in range(4)]
    optimizer = registry.optimizers.get("spacy_lmcrf.SGD.v1")(
        0.1, momentum=0.9, nesterov=nesterov, grad_norm_clip=0.0
    )
    ours = start.copy()
    for grad in grads:
        ours, _ = optimizer((0, "w"), ours, grad.copy())
    param = torch.nn.Parameter(torch.from_numpy(start.copy()))
    reference = torch.optim.SGD([param], lr=0.1, momentum=0.9, nesterov=nesterov)
    for grad in grads:
        param.grad = torch.from_numpy(grad.copy())
        reference.step()
    numpy.testing.assert_allclose(ours, param.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_inverse_time_decay_steps_per_epoch():
    schedule = registry.schedules.get("spacy_lmcrf.inverse_time_decay.v1")(0.015, 0.05, 3)
    rates = list(islice(schedule, 9))
    expected = [0.015] * 3 + [0.015 / 1.05] * 3 + [0.015 / 1.1] * 3
    numpy.testing.assert_allclose(rates, expected)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        next(registry.schedules.get("spacy_lmcrf.inverse_time_decay.v1")(0.1, 0.05, 0))


def test_schedule_drives_the_optimizer():
    schedule = registry.schedules.get("spacy_lmcrf.inverse_time_decay.v1")(1.0, 1.0, 2)
    optimizer = registry.optimizers.get("spacy_lmcrf.SGD.v1")(schedule)
    seen = []
    for _ in range(5):
        seen.append(optimizer.learn_rate)
        optimizer.step_schedules()
    assert seen == [1.0, 1.0, 0.5, 0.5, 1.0 / 3]


def _model_grads(model):
    return [
        p.grad.clone()
        for node in model.walk()
        for shim in node.shims
        for p in shim._model.parameters()
        if p.grad is not None
    ]


def test_global_norm_clipping_rescales_all_gradients_together():
    nlp = make_nlp("lm_crf_ner")
    examples = ner_examples(nlp)
    nlp.initialize(lambda: examples)
    ner = nlp.get_pipe("lm_crf_ner")
    scores, backprop = ner.model.begin_update([eg.predicted for eg in examples])
    _, d_potentials = ner.get_loss(examples, scores)
    backprop([d * 100.0 for d in d_potentials])
    before = _model_grads(ner.model)
    norm = float(torch.sqrt(sum((g**2).sum() for g in before)))
    assert norm > 5.0
    returned = clip_gradient_norm(ner.model, 5.0)
    assert returned == pytest.approx(norm, rel=1e-4)
    after = _model_grads(ner.model)
    assert float(torch.sqrt(sum((g**2).sum() for g in after))) == pytest.approx(5.0, rel=1e-3)
    for b, a in zip(before, after):
        torch.testing.assert_close(a, b * (5.0 / norm), rtol=1e-3, atol=1e-7)


def test_component_update_applies_global_clipping():
    nlp = make_nlp("lm_crf_ner")
    examples = ner_examples(nlp)
    nlp.initialize(lambda: examples)
    optimizer = registry.optimizers.get("spacy_lmcrf.SGD.v1")(0.01, grad_norm_clip=1e-3)
    module = nlp.get_pipe("lm_crf_ner").model.get_ref("crf_head").shims[0]._model
    before = [p.detach().clone() for p in module.parameters()]
    nlp.update(examples, sgd=optimizer)
    moved = (
        sum(float((p.detach() - b).norm() ** 2) for p, b in zip(module.parameters(), before)) ** 0.5
    )
    # one SGD step moves the weights by lr * (clipped) gradient: at most 0.01 * 1e-3 in norm
    assert 0 < moved <= 0.01 * 1e-3 * 1.01


@pytest.mark.parametrize("initial_accumulator", [0.0, 0.1])
def test_adagrad_matches_torch(initial_accumulator):
    rng = numpy.random.default_rng(1)
    start = rng.normal(size=(4, 3)).astype("float32")
    grads = [rng.normal(size=(4, 3)).astype("float32") for _ in range(5)]
    grads[2][0, 0] = 0.0
    optimizer = registry.optimizers.get("spacy_lmcrf.Adagrad.v1")(
        0.01, initial_accumulator=initial_accumulator
    )
    ours = start.copy()
    for grad in grads:
        ours, _ = optimizer((0, "w"), ours, grad.copy())
    param = torch.nn.Parameter(torch.from_numpy(start.copy()))
    reference = torch.optim.Adagrad([param], lr=0.01, initial_accumulator_value=initial_accumulator)
    for grad in grads:
        param.grad = torch.from_numpy(grad.copy())
        reference.step()
    numpy.testing.assert_allclose(ours, param.detach().numpy(), rtol=1e-5, atol=1e-7)


def test_adagrad_applies_global_clipping_in_a_component():
    nlp = make_nlp("lm_crf_ner")
    examples = ner_examples(nlp)
    nlp.initialize(lambda: examples)
    optimizer = registry.optimizers.get("spacy_lmcrf.Adagrad.v1")(0.01, grad_norm_clip=1.0)
    assert optimizer.grad_norm_clip == 1.0
    module = nlp.get_pipe("lm_crf_ner").model.get_ref("crf_head").shims[0]._model
    before = [p.detach().clone() for p in module.parameters()]
    nlp.update(examples, sgd=optimizer)
    # AdaGrad's first step moves every weight with a gradient by lr (times its sign)
    steps = torch.cat(
        [(p.detach() - b).abs().flatten() for p, b in zip(module.parameters(), before)]
    )
    assert float(steps.max()) == pytest.approx(0.01, rel=1e-4)


def test_anneal_on_loss_plateau_halves_after_patience_epochs():
    from spacy_lmcrf.training.optimizers import anneal_on_loss_plateau

    schedule = anneal_on_loss_plateau(0.1, steps_per_epoch=2, factor=0.5, patience=2)
    rates = [next(schedule)]
    # epoch losses: 10 (best), 9 (best), 9.5, 9.5 -> halve, 8 (best), 8, 8 -> halve
    for epoch_loss in (10, 9, 9.5, 9.5, 8, 8, 8):
        for _ in range(2):
            schedule.observe_loss(epoch_loss / 2)
            rates.append(next(schedule))
    per_epoch = rates[::2]
    assert per_epoch == pytest.approx([0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025])
    assert schedule.history == [10, 9, 9.5, 9.5, 8, 8, 8]


def test_anneal_on_loss_plateau_needs_reported_losses():
    from spacy_lmcrf.training.optimizers import anneal_on_loss_plateau

    schedule = anneal_on_loss_plateau(0.1, steps_per_epoch=1)
    next(schedule)
    with pytest.raises(ValueError, match="saw no training loss"):
        next(schedule)


def test_components_report_their_loss_to_the_schedule():
    nlp = make_nlp("lm_crf_ner")
    examples = ner_examples(nlp)
    nlp.initialize(lambda: examples)
    schedule = registry.schedules.get("spacy_lmcrf.anneal_on_loss_plateau.v1")(
        0.01, steps_per_epoch=100
    )
    optimizer = registry.optimizers.get("spacy_lmcrf.SGD.v1")(learn_rate=schedule)
    # as spacy train does: update without an optimizer, then finish_update
    losses = nlp.update(examples, sgd=False)
    nlp.get_pipe("lm_crf_ner").finish_update(optimizer)
    assert schedule.reports == 1
    assert schedule.epoch_loss == pytest.approx(losses["lm_crf_ner"])


# -- TagLM's schedule: divide the rate after the best dev score, then stop ------------------


def drop_after_best_dev(**settings):
    return registry.resolve(
        {
            "s": {
                "@schedules": "spacy_lmcrf.drop_after_best_dev.v1",
                "initial_rate": 1.0,
                "steps_per_epoch": 2,
                "epochs_per_drop": 1,
                "patience": 2,
                **settings,
            }
        }
    )["s"]


def test_schedule_divides_after_the_best_score_then_stops():
    from spacy_lmcrf.training.callbacks import TrainingScheduleDone

    s = drop_after_best_dev()
    assert next(s) == 1.0
    claim_listeners()
    rates = []
    scores = iter([0.1, 0.5, 0.4, 0.45, 0.6, 0.7, 0.8, 0.9, 0.95])
    with pytest.raises(TrainingScheduleDone):
        for step in range(100):
            rates.append(next(s))
            s.observe_dev_score(next(scores), step=step, epoch=step // 2)
    # best 0.5 at step 1; two evaluations without a better one (0.4, 0.45) -> / 10 for one
    # epoch (2 steps), / 10 again for 2 steps, then the next evaluation stops training. As
    # in spaCy's loop, the rate returned after step k's update is used by update k + 1,
    # so the last one (at the stopping step) is never used.
    assert rates == pytest.approx([1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.01, 0.01, 0.01])
    assert s.drops_done == 2 and s.finished


def test_the_logger_claims_the_newest_schedule_only():
    """`spacy train` resolves [training] twice; only the second resolution's schedule is
    stepped, so only it hears the dev scores."""
    first, second = drop_after_best_dev(), drop_after_best_dev()
    assert claim_listeners() == [second]
    assert second.connected and not first.connected
    assert claim_listeners() == []


def test_schedule_without_dev_scores_fails_loudly():
    s = drop_after_best_dev()
    next(s)
    with pytest.raises(RuntimeError, match="no training logger reports it"):
        next(s)
    connected = drop_after_best_dev()
    next(connected)
    claim_listeners()
    next(connected)
    with pytest.raises(RuntimeError, match="received no dev score"):
        next(connected)
