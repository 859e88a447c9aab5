"""Checkpoints of `spacy lmcrf train`, from which `--resume` goes on where a run stopped.

OUTPUT/checkpoint holds
- model/: the pipeline (nlp.to_disk of the raw weights: no parameter averages swapped in,
  no [training.before_to_disk] callback);
- state.msgpack: a tensor file (spacy_lmcrf.ml.modules.tensor_file: loading it never
  unpickles, a damaged one is refused) with everything else a run needs to go on: the
  optimizer's state (update counts, Thinc's mom1/mom2 and averages, the per-parameter state
  of spacy_lmcrf's optimizers, the current hyper-parameters and each schedule's state), the
  progress (steps done, every evaluation so far, the losses since the last one, words seen,
  seconds), the position in the batch stream, the random generators' states (Python's,
  numpy's, torch's, CUDA's) and the config the run was started with.

The directory is written with atomic_save.replace_directory_atomically: a run killed while
writing one leaves the previous checkpoint whole (its half-written sibling is removed by
the next recovery and never read).

Parameters are named in the file by their place in the pipeline (component, node index in
model.walk(), parameter name), not by Thinc's (model id, name) keys: ids are counters of
the process that built the model, and a resumed run builds it again.

The batch stream is spacy.training.loop.create_train_batches made resumable: the examples'
order is shuffled once per epoch, and the batchers draw from `random` while they are
iterated (spacy_lmcrf.batch_by_length.v1). The stream keeps a `random` state of its own,
swapped in whenever it shuffles or pulls a batch, so what training draws between two
batches cannot change the epoch's batches; a checkpoint records the epoch, the batches of
it consumed, the stream's random state at the epoch's start and the order the epoch
shuffled. A resumed run shuffles that order again from that state and skips the consumed
batches: the same batches follow, for any batcher that draws only from `random`. Where
nothing else draws from `random` during training (spaCy's loop and the spacy_lmcrf
components do not), the batches are those of `spacy train` with the same seed.
"""

import math
import random
import shutil
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
    cast,
)

import numpy
import torch
from spacy.errors import Errors
from spacy.language import Language
from spacy.training import Example
from thinc.api import Config, Model, Optimizer, get_current_ops
from thinc.compat import cupy, has_cupy  # cupy only through thinc: optional
from thinc.shims import PyTorchShim
from thinc.util import get_torch_default_device

from ..ml.modules.tensor_file import Tensors, read_tensor_file, tensors_to_bytes
from .atomic_save import recover_interrupted_save, replace_directory_atomically

DIR_CHECKPOINT = "checkpoint"
MODEL_DIR = "model"
STATE_FILE = "state.msgpack"
FORMAT = "spacy_lmcrf.train_checkpoint.v1"
# What a resumed run may set differently from the run it goes on: when and how training
# ends, how often it evaluates, how it logs and what it does to a saved pipeline. Anything
# else (the model, the data, the optimizer, the batches, the seed) must be the same.
RESUMABLE_SETTINGS = (
    "training.max_steps",
    "training.max_epochs",
    "training.patience",
    "training.eval_frequency",
    "training.logger",
    "training.before_to_disk",
    "training.gpu_allocator",
    "system.gpu_allocator",
)
# Thinc Optimizer attributes that hold {key: array} state, and its scheduled hyper-parameters
THINC_PER_KEY_STATE = ("mom1", "mom2", "averages")
HYPER_PARAMETERS = ("learn_rate", "b1", "b2", "eps", "L2", "grad_clip")

Batch = List[Example]
ParamKey = Tuple[int, str]


class ResumeError(ValueError):
    """`--resume` cannot go on: the checkpoint is missing, damaged or from another config."""


@dataclass
class TrainingProgress:
    """Where a training run is, after `step` completed steps.

    step (int): the number of completed training steps (the next step's index).
    epoch (int): the epoch of the last completed step.
    batches_in_epoch (int): the batches of that epoch consumed.
    results (List[Tuple[float, int]]): (score, step) of every evaluation, as spaCy's loop.
    losses (Dict[str, float]): the losses summed since the last evaluation.
    words (int): training words seen.
    seconds (float): seconds spent in the training loop, across resumes.
    """

    step: int = 0
    epoch: int = 0
    batches_in_epoch: int = 0
    results: List[Tuple[float, int]] = field(default_factory=list)
    losses: Dict[str, float] = field(default_factory=dict)
    words: int = 0
    seconds: float = 0.0

    def to_meta(self) -> Dict[str, Any]:
        return {
            "step": self.step,
            "epoch": self.epoch,
            "batches_in_epoch": self.batches_in_epoch,
            "results": [[float(score), int(step)] for score, step in self.results],
            "losses": {name: float(value) for name, value in self.losses.items()},
            "words": self.words,
            "seconds": self.seconds,
        }

    @classmethod
    def from_meta(cls, meta: Dict[str, Any]) -> "TrainingProgress":
        return cls(
            step=meta["step"],
            epoch=meta["epoch"],
            batches_in_epoch=meta["batches_in_epoch"],
            results=[(score, step) for score, step in meta["results"]],
            losses=dict(meta["losses"]),
            words=meta["words"],
            seconds=meta["seconds"],
        )


@dataclass
class EpochStart:
    """What an epoch's batches follow from: the stream's random state before the epoch's
    shuffle and the example order it shuffled (None for a streamed corpus)."""

    random_state: Tuple[Any, ...]
    order: Optional[List[int]]


class TrainBatchStream:
    """spacy.training.loop.create_train_batches, resumable (see the module's docstring).
    Iterating yields (epoch, index of the batch in its epoch, batch).

    nlp (Language): the pipeline the corpus reads with.
    corpus (Callable[[Language], Iterable[Example]]): the training corpus.
    batcher (Callable[[Iterable[Example]], Iterable[Batch]]): [training.batcher].
    max_epochs (int): as [training] max_epochs (0: no limit; -1: stream the corpus once
        per epoch without loading it whole, unshuffled).
    """

    def __init__(
        self,
        nlp: Language,
        corpus: Callable[[Language], Iterable[Example]],
        batcher: Callable[[Iterable[Example]], Iterable[Batch]],
        max_epochs: int,
    ) -> None:
        self.nlp = nlp
        self.corpus = corpus
        self.batcher = batcher
        self.max_epochs = max_epochs
        self.random_state = random.getstate()
        self.first_epoch = 0
        self.skip = 0
        self.first_order: Optional[List[int]] = None
        self.epoch_starts: Dict[int, EpochStart] = {}
        self.examples: Optional[List[Example]] = None

    def resume_at(self, epoch: int, batches_done: int, start: EpochStart) -> None:
        """Start at the batch after the first batches_done of epoch, which starts from start."""
        self.first_epoch, self.skip = epoch, batches_done
        self.random_state = start.random_state
        self.first_order = start.order

    def load(self) -> None:
        """Read the corpus (where max_epochs >= 0), if not yet read."""
        if self.max_epochs >= 0 and self.examples is None:
            self.examples = list(self.corpus(self.nlp))
            if not self.examples:
                raise ValueError(Errors.E986)

    def epoch_start(self, epoch: int) -> EpochStart:
        """How epoch (the current one or the one before) started."""
        return self.epoch_starts[epoch]

    @contextmanager
    def own_random(self) -> Iterator[None]:
        """Let `random` draw from the stream's state inside the context."""
        outside = random.getstate()
        random.setstate(self.random_state)
        try:
            yield
        finally:
            self.random_state = random.getstate()
            random.setstate(outside)

    def __iter__(self) -> Iterator[Tuple[int, int, Batch]]:
        self.load()
        examples = self.examples
        order = self.first_order
        if order is None and examples is not None:
            order = list(range(len(examples)))
        epoch, skip = self.first_epoch, self.skip
        while self.max_epochs < 1 or epoch < self.max_epochs:
            with self.own_random():
                self.epoch_starts = {e: s for e, s in self.epoch_starts.items() if e == epoch - 1}
                self.epoch_starts[epoch] = EpochStart(
                    self.random_state, list(order) if order is not None else None
                )
                if examples is not None and order is not None:
                    random.shuffle(order)  # in place, as spaCy shuffles its list of examples
                    epoch_examples: Iterable[Example] = [examples[i] for i in order]
                else:
                    epoch_examples = self.corpus(self.nlp)
                batches = iter(self.batcher(epoch_examples))
            index = 0
            while True:
                with self.own_random():
                    batch = next(batches, None)
                if batch is None:
                    break
                if index >= skip:
                    yield epoch, index, batch
                index += 1
            skip = 0
            epoch += 1


class CheckpointCadence:
    """When to write a checkpoint: every `steps` steps and/or every `minutes` minutes of
    training (0: never by that measure).

    minutes (float): minutes between two checkpoints.
    steps (int): steps between two checkpoints.
    """

    def __init__(self, minutes: float = 0.0, steps: int = 0) -> None:
        if minutes < 0 or steps < 0:
            raise ValueError(
                f"checkpoint minutes and steps must not be negative, got {minutes}, {steps}"
            )
        self.minutes = minutes
        self.steps = steps
        self.last_seconds = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.minutes or self.steps)

    def start(self, seconds: float) -> None:
        """The clock starts (again) at seconds of training."""
        self.last_seconds = seconds

    def due(self, step: int, seconds: float) -> bool:
        """Whether a checkpoint is due after `step` completed steps, at seconds of training."""
        by_steps = bool(self.steps) and step % self.steps == 0
        by_time = bool(self.minutes) and seconds - self.last_seconds >= self.minutes * 60
        return by_steps or by_time


@dataclass
class Checkpoint:
    """A checkpoint read from disk: its directory, tensors and metadata."""

    path: Path
    tensors: Tensors
    meta: Dict[str, Any]

    @property
    def model_path(self) -> Path:
        return self.path / MODEL_DIR

    @property
    def progress(self) -> TrainingProgress:
        return TrainingProgress.from_meta(self.meta["progress"])

    @property
    def config(self) -> Config:
        """The config the checkpointed run was started with (overrides applied)."""
        return Config().from_str(self.meta["config"], interpolate=False)

    @property
    def epoch_start(self) -> EpochStart:
        start = self.meta["epoch_start"]
        order = self.tensors.get("stream.order")
        return EpochStart(
            _python_random_state(start["random_state"]),
            order.tolist() if order is not None else None,
        )


def write_checkpoint(
    path: Union[str, Path],
    nlp: Language,
    optimizer: Optimizer,
    progress: TrainingProgress,
    stream: TrainBatchStream,
    config: Config,
    *,
    finished: bool = False,
) -> Path:
    """Write the checkpoint directory at path, atomically (see the module's docstring).

    path (Union[str, Path]): the checkpoint's directory (OUTPUT/checkpoint).
    nlp (Language): the pipeline in training.
    optimizer (Optimizer): its optimizer.
    progress (TrainingProgress): where training is.
    stream (TrainBatchStream): the batch stream.
    config (Config): the config the run was started with, which a resume must match.
    finished (bool): training has ended (the last checkpoint of a run that was not stopped
        from outside): a new run in the same directory may replace it.
    RETURNS (Path): path.
    """
    names = parameter_names(nlp)
    tensors, optimizer_meta = optimizer_state(optimizer, names, progress.step)
    random_tensors, random_meta = random_states()
    tensors.update(random_tensors)
    start = stream.epoch_start(progress.epoch)
    if start.order is not None:
        tensors["stream.order"] = torch.tensor(start.order, dtype=torch.int64)
    meta = {
        "format": FORMAT,
        "finished": finished,
        "config": config.to_str(),
        "progress": progress.to_meta(),
        "epoch_start": {"random_state": _jsonable_random_state(start.random_state)},
        "optimizer": optimizer_meta,
        "random": random_meta,
    }
    state = tensors_to_bytes(tensors, meta)

    def write(directory: Path) -> None:
        directory.mkdir()
        nlp.to_disk(directory / MODEL_DIR)
        (directory / STATE_FILE).write_bytes(state)

    return replace_directory_atomically(path, write)


def read_checkpoint(path: Union[str, Path]) -> Checkpoint:
    """The checkpoint at path, after undoing what a killed writer left beside it.

    path (Union[str, Path]): the checkpoint's directory.
    RETURNS (Checkpoint): its tensors and metadata.
    Raises ResumeError where there is no complete checkpoint.
    """
    path = Path(path)
    recover_interrupted_save(path)
    if not (path / STATE_FILE).is_file() or not (path / MODEL_DIR).is_dir():
        raise ResumeError(
            f"--resume: there is no checkpoint at {path} (train with --checkpoint-minutes "
            "or --checkpoint-steps to write one)"
        )
    tensors, meta = read_tensor_file(path / STATE_FILE)
    if meta.get("format") != FORMAT:
        raise ResumeError(f"--resume: {path / STATE_FILE} is not a {FORMAT} checkpoint")
    return Checkpoint(path, tensors, meta)


def remove_finished_checkpoint(path: Union[str, Path]) -> None:
    """Before a new (not resumed) run: remove the checkpoint at path if its run finished;
    refuse to remove one that a run left unfinished (killed, preempted), which only
    --resume may use, or that cannot be read.

    path (Union[str, Path]): the checkpoint's directory.
    Raises ResumeError where the checkpoint is unfinished or unreadable.
    """
    path = Path(path)
    recover_interrupted_save(path)
    if not path.exists():
        return
    if (path / STATE_FILE).is_file():
        try:
            checkpoint = read_checkpoint(path)
        except ValueError as err:
            message = f"{path} holds a checkpoint that cannot be read ({err}); remove it"
            raise ResumeError(message) from None
        if not checkpoint.meta["finished"]:
            step = checkpoint.progress.step
            raise ResumeError(
                f"{path} holds the checkpoint of an unfinished run ({step} steps done): add "
                "--resume to go on from it, or remove it (or use another output directory) "
                "to start again"
            )
    shutil.rmtree(path)


def check_resumable_config(saved: Config, config: Config) -> None:
    """Raise ResumeError if config differs from the checkpointed run's in more than
    RESUMABLE_SETTINGS (or switches between a loaded and a streamed corpus).

    saved (Config): the config the checkpointed run was started with.
    config (Config): the config of the run that resumes it.
    """
    old, new = saved.interpolate(), config.interpolate()
    changed = [
        name
        for name in config_differences(old, new)
        if not any(name == s or name.startswith(s + ".") for s in RESUMABLE_SETTINGS)
    ]
    if changed:
        raise ResumeError(
            "--resume: the config differs from the checkpoint's in "
            f"{', '.join(changed)}; a resumed run may change only "
            f"{', '.join(RESUMABLE_SETTINGS)}. Use the same config and overrides, or train "
            "into another output directory"
        )
    if (old["training"]["max_epochs"] < 0) != (new["training"]["max_epochs"] < 0):
        raise ResumeError(
            "--resume: training.max_epochs may not switch between -1 (a streamed corpus) "
            "and a number of epochs"
        )


def config_differences(old: Any, new: Any, prefix: str = "") -> List[str]:
    """The dotted names of the settings whose values differ between two config dicts."""
    if isinstance(old, dict) and isinstance(new, dict):
        names: List[str] = []
        for key in sorted(set(old) | set(new), key=str):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                names.append(name)
            else:
                names.extend(config_differences(old[key], new[key], name))
        return names
    return [] if old == new else [prefix]


def parameter_names(nlp: Language) -> Dict[ParamKey, str]:
    """A name for each optimizer key of nlp's parameters that stays the same when the
    pipeline is built again: COMPONENT:NODE_INDEX:PARAM for Thinc parameters,
    COMPONENT:NODE_INDEX:shimJ:NAME for torch parameters (NODE_INDEX in model.walk()).

    nlp (Language): the pipeline.
    RETURNS (Dict[Tuple[int, str], str]): Thinc's (id, name) key -> stable name.
    """
    names: Dict[ParamKey, str] = {}
    for component, proc in nlp.components:
        model = getattr(proc, "model", None)
        if not isinstance(model, Model):
            continue
        for index, node in enumerate(model.walk()):
            for param in node.param_names:
                names.setdefault((node.id, param), f"{component}:{index}:{param}")
            for j, shim in enumerate(node.shims):
                if isinstance(shim, PyTorchShim):
                    for param, _ in shim._model.named_parameters():
                        key = (shim.id, param)
                        names.setdefault(key, f"{component}:{index}:shim{j}:{param}")
    return names


def optimizer_state(
    optimizer: Optimizer, names: Dict[ParamKey, str], steps_done: int
) -> Tuple[Tensors, Dict[str, Any]]:
    """An optimizer's state as named tensors and msgpack-able metadata.

    optimizer (Optimizer): a Thinc optimizer (spacy_lmcrf's included).
    names (Dict[Tuple[int, str], str]): parameter_names of the pipeline.
    steps_done (int): the training steps completed (how often the schedules were stepped).
    RETURNS (Tuple[Tensors, Dict[str, Any]]): the tensors and the metadata.
    """

    def name(key: ParamKey) -> str:
        if key not in names:
            raise ValueError(
                f"the optimizer holds state for {key}, which is no parameter of the pipeline"
            )
        return names[key]

    tensors: Tensors = {}
    for attribute in per_key_attributes(optimizer):
        for key, value in (getattr(optimizer, attribute) or {}).items():
            tensor = value if isinstance(value, torch.Tensor) else _to_torch(value)
            tensors[f"optimizer.{attribute}.{name(key)}"] = tensor
    schedules: Dict[str, Any] = {}
    for attribute, schedule in optimizer.schedules.items():
        get_state = getattr(schedule, "get_state", None)
        # a plain schedule is replayed: once at construction, once per step
        schedules[attribute] = (
            {"state": get_state()} if get_state is not None else {"calls": steps_done + 1}
        )
    meta = {
        "nr_update": {name(key): int(n) for key, n in optimizer.nr_update.items()},
        "last_seen": {name(key): int(n) for key, n in optimizer.last_seen.items()},
        "hyper_parameters": {a: float(getattr(optimizer, a)) for a in HYPER_PARAMETERS},
        "schedules": schedules,
        "uses_averages": optimizer.averages is not None,
        "radam_buffer": [[_plain(v) for v in entry] for entry in optimizer._radam_buffer],
    }
    return tensors, meta


def restore_optimizer(optimizer: Optimizer, nlp: Language, checkpoint: Checkpoint) -> None:
    """Put the checkpoint's optimizer state into optimizer, a fresh one of the same config,
    for nlp, the pipeline loaded from the checkpoint.

    Raises ResumeError where the checkpoint names parameters the pipeline lacks.
    """
    meta = checkpoint.meta["optimizer"]
    keys = {stable: key for key, stable in parameter_names(nlp).items()}

    def key_of(stable: str) -> ParamKey:
        if stable not in keys:
            raise ResumeError(
                f"--resume: the checkpoint's parameter {stable} is not in the pipeline"
            )
        return keys[stable]

    ops = get_current_ops()
    device = get_torch_default_device()
    torch_state = set(getattr(optimizer, "per_key_state", ()))
    for attribute in per_key_attributes(optimizer):
        if attribute == "averages" and optimizer.averages is None:
            continue
        store: Dict[ParamKey, Any] = {}
        prefix = f"optimizer.{attribute}."
        for tensor_name, tensor in checkpoint.tensors.items():
            if tensor_name.startswith(prefix):
                key = key_of(tensor_name[len(prefix) :])
                store[key] = (
                    tensor.to(device)
                    if attribute in torch_state
                    else ops.asarray(cast(Any, tensor.numpy()))
                )
        getattr(optimizer, attribute).clear()
        getattr(optimizer, attribute).update(store)
    optimizer.nr_update.clear()
    optimizer.nr_update.update({key_of(k): n for k, n in meta["nr_update"].items()})
    optimizer.last_seen.clear()
    optimizer.last_seen.update({key_of(k): n for k, n in meta["last_seen"].items()})
    for attribute, value in meta["hyper_parameters"].items():
        setattr(optimizer, attribute, value)
    for attribute, saved in meta["schedules"].items():
        schedule = optimizer.schedules.get(attribute)
        if schedule is None:
            raise ResumeError(f"--resume: the optimizer has no schedule for {attribute}")
        if "state" in saved:
            cast(Any, schedule).set_state(saved["state"])
        else:
            for _ in range(saved["calls"] - 1):  # the first call was the optimizer's construction
                if next(schedule, None) is None:
                    break
    optimizer._radam_buffer = [list(entry) for entry in meta["radam_buffer"]]


def per_key_attributes(optimizer: Optimizer) -> Tuple[str, ...]:
    """The optimizer's attributes that hold {key: array or tensor} state."""
    return THINC_PER_KEY_STATE + tuple(getattr(optimizer, "per_key_state", ()))


def random_states() -> Tuple[Tensors, Dict[str, Any]]:
    """The states of Python's `random`, numpy's global generator, torch's and CUDA's."""
    version, internal, gauss = random.getstate()
    name, keys, position, has_gauss, cached = cast(Tuple[Any, ...], numpy.random.get_state())
    tensors: Tensors = {
        "random.numpy": torch.from_numpy(keys.astype(numpy.int64)),
        "random.torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for index, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"random.cuda.{index}"] = state
    meta = {
        "python": [version, list(internal), gauss],
        "numpy": [name, int(position), int(has_gauss), float(cached)],
    }
    return tensors, meta


def restore_random_states(checkpoint: Checkpoint) -> None:
    """Set the random generators to the checkpoint's states."""
    meta, tensors = checkpoint.meta["random"], checkpoint.tensors
    random.setstate(_python_random_state(meta["python"]))
    name, position, has_gauss, cached = meta["numpy"]
    keys = tensors["random.numpy"].numpy().astype(numpy.uint32)
    numpy.random.set_state((name, keys, position, has_gauss, cached))
    torch.set_rng_state(tensors["random.torch"])
    cuda_states = [tensors[f"random.cuda.{i}"] for i in range(_count(tensors, "random.cuda."))]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)


def reseed_cupy(seed: int, step: int) -> None:
    """cupy's generator state cannot be saved: on a GPU, a run reseeds it from the training
    seed and the step at every checkpoint, and a resumed run does the same."""
    if has_cupy:
        cupy.random.seed((seed * 1_000_003 + step) % 2**32)


def _python_random_state(saved: Sequence[Any]) -> Tuple[Any, ...]:
    version, internal, gauss = saved
    return (version, tuple(internal), gauss)


def _jsonable_random_state(state: Tuple[Any, ...]) -> List[Any]:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _to_torch(array: Any) -> torch.Tensor:
    """A numpy or cupy array as a CPU torch tensor (a copy)."""
    if hasattr(array, "get"):  # cupy
        array = array.get()
    return torch.from_numpy(numpy.array(array, copy=True))


def _plain(value: Any) -> Any:
    """A scalar of the RAdam buffer as a msgpack-able value."""
    if value is None or isinstance(value, (int, float)):
        return value
    number = float(value)
    return number if math.isfinite(number) else None


def _count(tensors: Tensors, prefix: str) -> int:
    return sum(1 for name in tensors if name.startswith(prefix))
