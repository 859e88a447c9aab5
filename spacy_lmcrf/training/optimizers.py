"""What Thinc lacks for the papers' recipes: SGD with momentum, AdaGrad, global-norm
clipping, and learning rates that decay per epoch."""

import copy
from typing import Any, Dict, Iterator, List, Optional, Tuple, cast

import torch
from spacy.util import registry
from thinc.api import Model, Optimizer, xp2torch
from thinc.backends import get_array_ops
from thinc.shims import PyTorchShim
from thinc.types import FloatsXd

from .callbacks import TrainingScheduleDone
from .dev_scores import DevScoreListener, register_listener


class StepRuleOptimizer(Optimizer):
    """Thinc's per-parameter bookkeeping (L2, per-tensor clipping, zeroing the gradient,
    parameter averages) around a subclass's update direction: w -= lr * direction.

    grad_norm_clip is read by the spacy_lmcrf components, which rescale all their
    gradients together to this global norm before the update (Thinc's own grad_clip
    clips each tensor separately).
    """

    __slots__ = ["grad_norm_clip"]
    # the attributes that hold a subclass's per-parameter state ({key: torch tensor}), which
    # a training checkpoint saves beside Thinc's mom1, mom2 and averages
    per_key_state: Tuple[str, ...] = ()

    def __init__(self, learn_rate, *, grad_norm_clip: float, **kwargs):
        # the subclasses keep their own moments; Thinc's Adam betas stay off
        super().__init__(learn_rate, beta1=0.0, beta2=0.0, **kwargs)
        self.grad_norm_clip = grad_norm_clip

    def step(self, key, weights: torch.Tensor, gradient: torch.Tensor, rate: float) -> None:
        """Move weights (in place) by the update rule, at learning rate `rate`."""
        raise NotImplementedError

    def __call__(self, key, weights: FloatsXd, gradient: FloatsXd, *, lr_scale: float = 1.0):
        if len(gradient) < 1:
            return weights, gradient
        ops = get_array_ops(weights)
        self.nr_update[key] += 1
        if self.grad_clip:
            gradient = ops.clip_gradient(gradient, self.grad_clip)
        # torch views of the arrays (numpy or cupy, no copy): the update runs in place, in
        # one pass per operation and on all of torch's threads; numpy's would take one
        # thread and a temporary array per operation (10.6M parameters in LM-LSTM-CRF)
        w, g = xp2torch(weights), xp2torch(gradient)
        rate = lr_scale * self.learn_rate
        if self.L2 != 0 and not self.L2_is_weight_decay:
            g.add_(w, alpha=self.L2)
        self.step(key, w, g, rate)
        if self.L2 != 0 and self.L2_is_weight_decay:
            w.mul_(1.0 - rate * self.L2)
        g.zero_()
        if self.averages is not None:
            if key not in self.averages:
                self.averages[key] = ops.alloc(weights.shape, dtype="float32")
            ops.update_averages(self.averages[key], weights, self.nr_update[key])
        return weights, gradient


class MomentumSGD(StepRuleOptimizer):
    """SGD with (optionally Nesterov) momentum, in PyTorch's formulation:
    v = momentum * v + g; w -= lr * v (Nesterov: w -= lr * (g + momentum * v)).
    """

    __slots__ = ["momentum", "nesterov", "velocities"]
    per_key_state = ("velocities",)

    def __init__(self, learn_rate, *, momentum: float, nesterov: bool, **kwargs):
        super().__init__(learn_rate, **kwargs)
        self.momentum = momentum
        self.nesterov = nesterov
        # per parameter key, torch tensors on the parameter's device
        self.velocities: Dict[Any, torch.Tensor] = {}

    def step(self, key, weights: torch.Tensor, gradient: torch.Tensor, rate: float) -> None:
        if not self.momentum:
            weights.add_(gradient, alpha=-rate)
            return
        velocity = self.velocities.get(key)
        if velocity is None:
            velocity = self.velocities[key] = gradient.clone()
        else:
            torch.add(gradient, velocity, alpha=self.momentum, out=velocity)
        if self.nesterov:
            weights.add_(gradient, alpha=-rate)
            weights.add_(velocity, alpha=-rate * self.momentum)
        else:
            weights.add_(velocity, alpha=-rate)


@registry.optimizers("spacy_lmcrf.SGD.v1")
def SGD_momentum(
    learn_rate: float,
    *,
    momentum: float = 0.9,
    nesterov: bool = False,
    grad_norm_clip: float = 5.0,
    grad_clip: float = 0.0,
    L2: float = 0.0,
    L2_is_weight_decay: bool = False,
    use_averages: bool = False,
) -> Optimizer:
    """SGD with momentum, as Ma & Hovy 2016 and LM-LSTM-CRF train.

    learn_rate (float or schedule): the learning rate.
    momentum (float): the momentum coefficient (0.9 in the papers).
    nesterov (bool): use Nesterov momentum.
    grad_norm_clip (float): rescale each component's gradients to at most this global
        L2 norm (5.0 in the papers); 0 disables.
    grad_clip (float): Thinc's per-tensor clipping; 0 disables.
    L2 (float): L2 penalty (added to the gradient unless L2_is_weight_decay).
    use_averages (bool): keep parameter averages (keep False for torch-wrapped models).
    """
    return MomentumSGD(
        learn_rate,
        momentum=momentum,
        nesterov=nesterov,
        grad_norm_clip=grad_norm_clip,
        grad_clip=grad_clip,
        L2=L2,
        L2_is_weight_decay=L2_is_weight_decay,
        use_averages=use_averages,
    )


class Adagrad(StepRuleOptimizer):
    """AdaGrad (Duchi et al. 2011) in PyTorch's formulation: s += g * g;
    w -= lr * g / (sqrt(s) + eps), the accumulator starting at initial_accumulator.
    """

    __slots__ = ["eps", "initial_accumulator", "accumulators"]
    per_key_state = ("accumulators",)

    def __init__(self, learn_rate, *, eps: float, initial_accumulator: float, **kwargs):
        super().__init__(learn_rate, **kwargs)
        self.eps = eps
        self.initial_accumulator = initial_accumulator
        # per parameter key, torch tensors on the parameter's device
        self.accumulators: Dict[Any, torch.Tensor] = {}

    def step(self, key, weights: torch.Tensor, gradient: torch.Tensor, rate: float) -> None:
        accumulator = self.accumulators.get(key)
        if accumulator is None:
            accumulator = self.accumulators[key] = torch.full_like(
                gradient, self.initial_accumulator
            )
        accumulator.addcmul_(gradient, gradient)
        weights.addcdiv_(gradient, accumulator.sqrt().add_(self.eps), value=-rate)


@registry.optimizers("spacy_lmcrf.Adagrad.v1")
def adagrad(
    learn_rate: float,
    *,
    eps: float = 1e-10,
    initial_accumulator: float = 0.0,
    grad_norm_clip: float = 0.0,
    grad_clip: float = 0.0,
    L2: float = 0.0,
    L2_is_weight_decay: bool = False,
    use_averages: bool = False,
) -> Optimizer:
    """AdaGrad, as Yang et al. 2016 train (learning rate 0.01). Defaults are PyTorch's.

    learn_rate (float or schedule): the learning rate.
    eps (float): added to the root of the accumulated squared gradients.
    initial_accumulator (float): the accumulator's starting value.
    grad_norm_clip (float): rescale each component's gradients to at most this global
        L2 norm; 0 disables (the paper names no clipping).
    grad_clip (float): Thinc's per-tensor clipping; 0 disables.
    L2 (float): L2 penalty (added to the gradient unless L2_is_weight_decay).
    use_averages (bool): keep parameter averages (keep False for torch-wrapped models).
    """
    return Adagrad(
        learn_rate,
        eps=eps,
        initial_accumulator=initial_accumulator,
        grad_norm_clip=grad_norm_clip,
        grad_clip=grad_clip,
        L2=L2,
        L2_is_weight_decay=L2_is_weight_decay,
        use_averages=use_averages,
    )


class NormClippedAdam(Optimizer):
    """Thinc's Adam, plus grad_norm_clip, which the spacy_lmcrf components read to
    rescale all their gradients together to this global norm before the update."""

    __slots__ = ["grad_norm_clip"]

    def __init__(self, learn_rate, *, grad_norm_clip: float, **kwargs):
        super().__init__(learn_rate, **kwargs)
        self.grad_norm_clip = grad_norm_clip


@registry.optimizers("spacy_lmcrf.Adam.v1")
def adam(
    learn_rate: float = 0.001,
    *,
    beta1: float = 0.9,
    beta2: float = 0.999,
    eps: float = 1e-8,
    grad_norm_clip: float = 5.0,
    grad_clip: float = 0.0,
    L2: float = 0.0,
    L2_is_weight_decay: bool = False,
    use_averages: bool = False,
) -> Optimizer:
    """Adam with the gradients' global norm clipped, as TagLM trains (Peters et al.
    2017: Adam, learning rate 0.001, gradient norms clipped at 5.0).

    learn_rate (float or schedule): the learning rate.
    beta1 (float), beta2 (float), eps (float): Adam's (Kingma & Ba's defaults).
    grad_norm_clip (float): rescale each component's gradients to at most this global
        L2 norm; 0 disables.
    grad_clip (float): Thinc's per-tensor clipping; 0 disables.
    L2 (float): L2 penalty (added to the gradient unless L2_is_weight_decay).
    use_averages (bool): keep parameter averages (keep False for torch-wrapped models).
    """
    return NormClippedAdam(
        learn_rate,
        grad_norm_clip=grad_norm_clip,
        beta1=beta1,
        beta2=beta2,
        eps=eps,
        grad_clip=grad_clip,
        L2=L2,
        L2_is_weight_decay=L2_is_weight_decay,
        use_averages=use_averages,
    )


@registry.schedules("spacy_lmcrf.inverse_time_decay.v1")
def inverse_time_decay(initial_rate: float, decay: float, steps_per_epoch: int) -> Iterator[float]:
    """lr_t = initial_rate / (1 + decay * t), with t the epoch (Ma & Hovy 2016;
    LM-LSTM-CRF uses decay 0.05). spaCy steps schedules once per batch, so give the
    number of batches per epoch (training sentences / batch size)."""
    if steps_per_epoch < 1:
        raise ValueError(f"steps_per_epoch must be at least 1, got {steps_per_epoch}")
    step = 0
    while True:
        yield initial_rate / (1.0 + decay * (step // steps_per_epoch))
        step += 1


def _torch_parameters(model: Model) -> List[torch.nn.Parameter]:
    params: List[torch.nn.Parameter] = []
    for node in model.walk():
        for shim in node.shims:
            if isinstance(shim, PyTorchShim):
                params.extend(p for p in shim._model.parameters() if p.grad is not None)
    return params


def clip_gradient_norm(model: Model, max_norm: float) -> float:
    """Rescale every gradient of model (torch and Thinc parameters together) so that
    their global L2 norm is at most max_norm. Returns the norm before clipping."""
    torch_params = _torch_parameters(model)
    thinc_grads: List[Any] = [  # numpy or cupy arrays
        node.get_grad(name)
        for node in model.walk()
        for name in node.param_names
        if node.has_grad(name)
    ]
    grads = [cast(torch.Tensor, p.grad) for p in torch_params] + [
        xp2torch(g)
        for g in thinc_grads  # views: scaling them scales Thinc's gradients
    ]
    by_device: Dict[torch.device, List[torch.Tensor]] = {}
    for grad in grads:
        by_device.setdefault(grad.device, []).append(grad)
    # one norm per device, read once: no host sync per tensor on a GPU
    norm = (
        sum(
            float(torch.linalg.vector_norm(torch.stack(torch._foreach_norm(group)).float())) ** 2
            for group in by_device.values()
        )
        ** 0.5
    )
    if norm > max_norm > 0:
        for group in by_device.values():
            torch._foreach_mul_(group, max_norm / (norm + 1e-6))
    return norm


class StatefulSchedule:
    """A learning-rate schedule whose next rates depend on more than the number of steps
    (the losses or dev scores it was shown): a training checkpoint saves get_state() and
    a resumed run restores it with set_state(); a plain generator schedule is replayed
    by calling it as many times instead. state_fields names the attributes that change."""

    state_fields: Tuple[str, ...] = ()

    def get_state(self) -> Dict[str, Any]:
        """The schedule's changing attributes (msgpack-able values)."""
        return {name: copy.deepcopy(getattr(self, name)) for name in self.state_fields}

    def set_state(self, state: Dict[str, Any]) -> None:
        """Restore what get_state returned."""
        missing = [name for name in self.state_fields if name not in state]
        if missing:
            raise ValueError(f"{type(self).__name__}: the saved state lacks {missing}")
        for name in self.state_fields:
            setattr(self, name, copy.deepcopy(state[name]))


class LossPlateauSchedule(StatefulSchedule):
    """A learning rate that is multiplied by `factor` whenever the training loss of an
    epoch has not fallen below the best epoch's for `patience` epochs (Akbik et al.
    2018: halve it after 5 epochs without improvement).

    Thinc steps a schedule once per batch and shows it nothing else, so the training
    loss comes from the spacy_lmcrf components: each update reports its loss to the
    optimizer's learn_rate schedule when that schedule has an observe_loss method.
    """

    state_fields = ("rate", "calls", "epoch_loss", "reports", "best_loss", "bad_epochs", "history")

    def __init__(
        self,
        initial_rate: float,
        *,
        steps_per_epoch: int,
        factor: float,
        patience: int,
        min_rate: float,
    ) -> None:
        if steps_per_epoch < 1 or patience < 1:
            raise ValueError(
                "steps_per_epoch and patience must be at least 1, "
                f"got {steps_per_epoch}, {patience}"
            )
        if not 0.0 < factor < 1.0:
            raise ValueError(f"factor must be between 0 and 1, got {factor}")
        self.rate = initial_rate
        self.steps_per_epoch = steps_per_epoch
        self.factor = factor
        self.patience = patience
        self.min_rate = min_rate
        self.calls = 0
        self.epoch_loss = 0.0
        self.reports = 0
        self.best_loss = float("inf")
        self.bad_epochs = 0
        self.history: List[float] = []

    def observe_loss(self, loss: float) -> None:
        """Add a batch's training loss to the current epoch's."""
        self.epoch_loss += float(loss)
        self.reports += 1

    def __iter__(self) -> "LossPlateauSchedule":
        return self

    def __next__(self) -> float:
        # the first call gives the initial rate; each later one follows an update
        if self.calls and self.calls % self.steps_per_epoch == 0:
            self._end_epoch()
        self.calls += 1
        return self.rate

    def _end_epoch(self) -> None:
        if self.reports == 0:
            raise ValueError(
                "spacy_lmcrf.anneal_on_loss_plateau.v1 saw no training loss in a whole epoch: "
                "only the spacy_lmcrf components (lm_crf_ner, lm_crf_tagger, lm_crf_spans) "
                "report it"
            )
        self.history.append(self.epoch_loss)
        if self.epoch_loss < self.best_loss:
            self.best_loss = self.epoch_loss
            self.bad_epochs = 0
        else:
            self.bad_epochs += 1
            if self.bad_epochs >= self.patience:
                self.rate = max(self.rate * self.factor, self.min_rate)
                self.bad_epochs = 0
        self.epoch_loss = 0.0
        self.reports = 0


@registry.schedules("spacy_lmcrf.anneal_on_loss_plateau.v1")
def anneal_on_loss_plateau(
    initial_rate: float,
    steps_per_epoch: int,
    factor: float = 0.5,
    patience: int = 5,
    min_rate: float = 0.0,
) -> LossPlateauSchedule:
    """Multiply the learning rate by factor when the epoch's training loss has not
    improved for patience epochs (Akbik et al. 2018: 0.5 after 5). spaCy steps
    schedules once per batch, so give the number of batches per epoch. Works with the
    spacy_lmcrf components, which report their losses to it."""
    return LossPlateauSchedule(
        initial_rate,
        steps_per_epoch=steps_per_epoch,
        factor=factor,
        patience=patience,
        min_rate=min_rate,
    )


def report_training_loss(optimizer: Optional[Optimizer], loss: float) -> None:
    """Tell the optimizer's learning-rate schedule a batch's loss, if it listens."""
    schedule = getattr(optimizer, "schedules", {}).get("learn_rate") if optimizer else None
    observe = getattr(schedule, "observe_loss", None)
    if observe is not None:
        observe(loss)


class DropAfterBestDevSchedule(StatefulSchedule, DevScoreListener):
    """TagLM's schedule (Peters et al. 2017, section 3): a constant rate while the dev
    score improves; once it has not improved for `patience` evaluations, the rate is
    divided by `factor` and training goes on for epochs_per_drop epochs, `drops` times
    in all; then training stops (TrainingScheduleDone, a clean exit).

    The dev scores come from the training logger (spacy_lmcrf.training.dev_scores); a schedule
    that receives none fails at its second step instead of acting as a constant.
    """

    name = "spacy_lmcrf.drop_after_best_dev.v1"
    state_fields = (
        "rate",
        "calls",
        "best",
        "bad_evaluations",
        "n_scores",
        "drops_done",
        "phase_end",
        "finished",
        "history",
    )

    def __init__(
        self,
        initial_rate: float,
        *,
        steps_per_epoch: int,
        factor: float,
        epochs_per_drop: int,
        drops: int,
        patience: int,
    ) -> None:
        if steps_per_epoch < 1 or epochs_per_drop < 1 or drops < 1 or patience < 1:
            raise ValueError(
                f"{self.name}: steps_per_epoch, epochs_per_drop, drops and patience "
                "must be at least 1, "
                f"got {steps_per_epoch}, {epochs_per_drop}, {drops}, {patience}"
            )
        if factor <= 1.0:
            raise ValueError(f"{self.name}: factor divides the rate and must be > 1, got {factor}")
        self.rate = initial_rate
        self.steps_per_epoch = steps_per_epoch
        self.factor = factor
        self.epochs_per_drop = epochs_per_drop
        self.drops = drops
        self.patience = patience
        self.calls = 0
        self.best: Optional[float] = None
        self.bad_evaluations = 0
        self.n_scores = 0
        self.drops_done = 0
        self.phase_end: Optional[int] = None
        self.finished = False
        self.history: List[dict] = []
        register_listener(self)

    def __iter__(self) -> "DropAfterBestDevSchedule":
        return self

    def __next__(self) -> float:
        # the first call (the optimizer's construction) gives the initial rate; each
        # later one follows a training step, and spaCy evaluates at step 0
        self.calls += 1
        if self.calls >= 2:
            self.check_connected(self.name)
        if self.calls >= 3 and self.n_scores == 0:
            raise RuntimeError(
                f"{self.name} received no dev score at step 0: the logger did not report it"
            )
        if self.phase_end is not None and self.calls > self.phase_end and not self.finished:
            if self.drops_done < self.drops:
                self._drop(first_call=self.calls)
            else:
                self.finished = True  # the next evaluation stops training
        return self.rate

    def observe_dev_score(self, score: float, *, step: int, epoch: int) -> None:
        self.n_scores += 1
        self.history.append({"step": step, "epoch": epoch, "score": score, "rate": self.rate})
        if self.finished:
            message = (
                f"Stopping: {self.name} has run its {self.drops} phases "
                f"of {self.epochs_per_drop} epochs "
                f"after the best dev score {self.best:.4f} (step {step}, epoch {epoch})"
            )
            print(message, flush=True)
            raise TrainingScheduleDone(message)
        if self.best is None or score > self.best:
            self.best = score
            self.bad_evaluations = 0
        else:
            self.bad_evaluations += 1
        if self.drops_done == 0 and self.bad_evaluations >= self.patience:
            self._drop(first_call=self.calls + 1)

    def _drop(self, first_call: int) -> None:
        """Divide the rate; the phase lasts from first_call (the first call that
        returns the new rate) for epochs_per_drop epochs of calls."""
        self.rate /= self.factor
        self.drops_done += 1
        self.phase_end = first_call + self.epochs_per_drop * self.steps_per_epoch - 1
        print(
            f"{self.name}: learning rate {self.rate:g} for {self.epochs_per_drop} epochs "
            f"(phase {self.drops_done} of {self.drops})",
            flush=True,
        )


@registry.schedules("spacy_lmcrf.drop_after_best_dev.v1")
def drop_after_best_dev(
    initial_rate: float,
    steps_per_epoch: int,
    factor: float = 10.0,
    epochs_per_drop: int = 5,
    drops: int = 2,
    patience: int = 1,
) -> DropAfterBestDevSchedule:
    """TagLM's learning-rate schedule: constant until the dev score stops improving
    (patience evaluations without a better score), then divided by factor for
    epochs_per_drop epochs, drops times, then training stops cleanly (model-best and
    model-last are saved). The paper: divide by 10, 5 epochs, twice.

    Needs the dev scores: use the logger spacy_lmcrf.TimedLogger.v1 or wrap yours in
    spacy_lmcrf.DevScoreLogger.v1 (an error says so otherwise). spaCy steps schedules
    once per batch, so give the number of batches per epoch; evaluate once per epoch
    ([training] eval_frequency = steps_per_epoch) for the paper's per-epoch dev check.

    initial_rate (float): the constant rate (the paper: 0.001 with Adam).
    steps_per_epoch (int): training batches per epoch.
    factor (float): what the rate is divided by at each drop.
    epochs_per_drop (int): epochs trained after each drop.
    drops (int): the number of drops before training stops.
    patience (int): dev evaluations without improvement before the first drop.
    """
    return DropAfterBestDevSchedule(
        initial_rate,
        steps_per_epoch=steps_per_epoch,
        factor=factor,
        epochs_per_drop=epochs_per_drop,
        drops=drops,
        patience=patience,
    )
