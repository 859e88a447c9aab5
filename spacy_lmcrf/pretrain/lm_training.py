"""The truncated-BPTT loop that trains a forward and a backward LM on streamed raw text,
shared by `spacy lmcrf pretrain-char-lm` and `spacy lmcrf pretrain-word-lm`.

The text is read in splits of batch_size x (bptt x split_windows + 1) units (characters
or tokens); each split is cut into batch_size contiguous rows that are read window by
window (bptt units), the LSTM states carried from one window to the next and reset at
each split. The backward LM reads each split reversed. Every unit of the text is trained
on in every epoch. With several files, interleave_files (the default) draws the next
split from a random file in proportion to its size (interleaved_splits). What differs
between the kinds of LM (how text is read and encoded, the model, the optimizer, the
held-out measure) is an LMTask.

Checkpoints (checkpoint.msgpack, everything a resume needs) are written at every
evaluation, every checkpoint_minutes of training (0 = only at evaluations), and when the
run is stopped by SIGINT (Ctrl-C) or SIGTERM: the step under way is finished, the
checkpoint written, and the run ends (a second signal aborts at once). `--resume` goes on
from any of them exactly as if the run had not stopped.

The progress bar (loop.RunProgress) shows the time left when the run has a budget: the
share of max_minutes or max_steps spent, whichever ends first.

Several processes (`torchrun --nproc_per_node N -m spacy lmcrf pretrain-char-lm ...`,
gloo on CPU, NCCL with --gpu-id, each process on cuda:LOCAL_RANK) train as one process
does, on the same batches:
- sharding: every rank reads the whole stream in the same order (reading and encoding
  text costs little next to the LSTMs) and trains on its contiguous 1/N of the rows of
  each batch (distributed.row_share): rank r the rows [r B / N, (r + 1) B / N) of the
  batch_size = B rows, with their recurrent state. All ranks take the same steps, and
  the stream position is the same on all of them.
- batch: batch_size is the effective batch; each rank's is batch_size / N rows. Each rank
  divides its summed loss by the whole batch's units and the gradients are summed over
  the ranks (distributed.sum_gradients), so an update is the single-process run's (equal
  up to float rounding without dropout; with dropout each rank draws its own masks,
  seeded with seed + rank). To go N times as fast on N times the data per step, multiply
  batch_size by N.
- stopping: after every step the ranks agree on the run time (the latest clock) and on
  whether any received SIGINT or SIGTERM (distributed.agree_on_stop), so a signal or the
  time budget on one rank stops all after the same step. A second signal within
  SIGNAL_REPEAT_GRACE seconds is the same request (torchrun forwards the terminal's
  Ctrl-C to workers that already got it). torchrun kills its workers 30 seconds after
  forwarding a signal: enough for a step and a checkpoint.
- evaluation, files and log: rank 0 evaluates on the held-out text and writes every file
  while the others wait; the best score is then broadcast (patience counts on it).
- checkpoints: rank 0 writes the single-process format: the recurrent states of the
  ranks joined into the whole batch's, each rank's random state (rng.torch.rankR besides
  rank 0's rng.torch), and the training loss summed over the ranks. `--resume` works with
  any number of processes: each takes its rows of the saved states and its random state
  (a rank the checkpoint has none for is seeded with seed + rank). The LM files hold the
  plain modules' weights (no DDP wrapper, no "module." prefix).
"""

import math
import random
from dataclasses import dataclass
from pathlib import Path
from typing import (
    Any,
    Callable,
    Dict,
    Generic,
    Iterator,
    List,
    Optional,
    Protocol,
    Sequence,
    Tuple,
    TypeVar,
    Union,
    cast,
)

import numpy
import torch
from thinc.api import Config
from wasabi import Printer, msg

from ..ml.modules.tensor_file import load_checked_module, read_tensor_file, write_tensor_file
from .distributed import (
    Ranks,
    agree_on_stop,
    broadcast_from_main,
    broadcast_parameters,
    gather_to_main,
    launched_ranks,
    process_group,
    row_share,
    sum_gradients,
    training_device,
    wait_for_main,
)
from .loop import (
    CheckpointTimer,
    RunClock,
    RunProgress,
    StopOnSignals,
    StopRule,
    append_log,
    drop_log_after,
)
from .text import text_files

# settings a resumed run may change (how long to go on); the others must match the checkpoint
RESUMABLE_CHANGES = (
    "eval_every",
    "max_steps",
    "max_epochs",
    "max_minutes",
    "patience",
    "checkpoint_minutes",
)
LOOP_SETTINGS = ("bptt", "batch_size", "split_windows", "eval_every")
# [training] defaults of the loop's own settings, the same for every kind of LM
LOOP_DEFAULTS = {
    "eval_every": 1000,
    "max_steps": 0,
    "max_epochs": 0,
    "max_minutes": 0,
    "patience": 0,
    "interleave_files": True,
    "checkpoint_minutes": 10,
}
MAX_OPEN_FILES = 64
CHECKPOINT = "checkpoint.msgpack"
# seconds in which a worker takes a repeated signal for the same (torchrun forwards the
# Ctrl-C that the terminal already sent to every worker)
SIGNAL_REPEAT_GRACE = 5.0
LOG = "log.jsonl"
State = Tuple[torch.Tensor, torch.Tensor]
LM = TypeVar("LM", bound=torch.nn.Module)


class DirectionalLM(Protocol):
    """One direction's LM (CharLM, WordLM), as the loop uses it."""

    def __call__(self, ids: torch.Tensor, state: Optional[State]) -> Tuple[torch.Tensor, State]: ...

    def summed_loss(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor: ...

    def parameters(self) -> Iterator[torch.nn.Parameter]: ...


class BiLM(Protocol):
    """The forward and the backward LM and their file (BiCharLM, BiWordLM), as the loop
    uses them besides torch.nn.Module's methods."""

    @property
    def forward_lm(self) -> DirectionalLM: ...

    @property
    def backward_lm(self) -> DirectionalLM: ...

    def meta(self, **training: Any) -> Dict[str, Any]: ...

    def save(self, path: Union[str, Path], **training: Any) -> None: ...


@dataclass
class LMTask(Generic[LM]):
    """What one kind of LM pretraining brings to the shared loop.

    metric (str): the held-out measure's name in the log ("bpc", "ppl").
    unit (str): what the text is counted in ("chars", "tokens").
    from_nats (Callable[[float], float]): mean nats per unit -> the measure.
    combine (Callable[[float, float], float]): the forward and backward measures -> one
        (the best model is the lowest).
    best_file (str), last_file (str): the model files written in the output directory.
    dev_budget (str): the [corpus] setting that caps the held-out units (0 = all).
    read_splits (Callable[[List[Path], int], Iterator[Sequence]]): files and a size in
        units -> consecutive pieces of the text (a str, or a list of tokens).
    build_model (Callable[[settings, train files], model]): a new model (its vocabulary
        counted from the training files).
    model_from_meta (Callable[[meta, source], model]): an empty model from its metadata.
    encode (Callable[[model, piece], numpy.ndarray]): a piece of text -> int64 ids.
    make_optimizer (Callable[[parameters, training settings], torch.optim.Optimizer]).
    describe (Callable[[model, settings], str]): a line about a new model.
    """

    metric: str
    unit: str
    from_nats: Callable[[float], float]
    combine: Callable[[float, float], float]
    best_file: str
    last_file: str
    dev_budget: str
    read_splits: Callable[[List[Path], int], Iterator[Sequence]]
    build_model: Callable[[Dict[str, Any], List[Path]], LM]
    model_from_meta: Callable[[Dict[str, Any], str], LM]
    encode: Callable[[LM, Any], numpy.ndarray]  # a piece: a str, or a list of tokens
    make_optimizer: Callable[[Any, Dict[str, Any]], torch.optim.Optimizer]
    describe: Callable[[LM, Dict[str, Any]], str]


def check_loop_settings(settings: Dict[str, Any], source: str) -> None:
    if not settings["corpus"]["train"]:
        raise ValueError(
            f"{source}: [corpus] train is not set: give the training text (--paths.train PATH)"
        )
    training = settings["training"]
    for key in LOOP_SETTINGS:
        if training[key] < 1:
            raise ValueError(f"{source}: [training] {key} must be positive, got {training[key]}")
    if not training["checkpoint_minutes"] >= 0:
        raise ValueError(
            f"{source}: [training] checkpoint_minutes must be 0 (only at evaluations) "
            f"or positive, got {training['checkpoint_minutes']}"
        )
    if not isinstance(training["interleave_files"], bool):
        raise ValueError(
            f"{source}: [training] interleave_files must be true or false, "
            f"got {training['interleave_files']!r}"
        )


def split_size(training: Dict[str, Any]) -> int:
    """Units per split: batch_size rows of split_windows windows, plus the last target."""
    return training["batch_size"] * (training["bptt"] * training["split_windows"] + 1)


def interleaved_splits(
    read_splits: Callable[[List[Path], int], Iterator[Sequence]],
    files: Sequence[Path],
    n_units: int,
    seed: Union[int, str],
    max_open: int = MAX_OPEN_FILES,
) -> Iterator[Sequence]:
    """The splits of every file, each file's in its own order, the files drawn at random
    (seeded) in proportion to their size on disk: every stretch of an epoch mixes the
    corpora, rather than one corpus after another (which drifts the LM from domain to
    domain). Every unit still comes exactly once. At most max_open files are read at a
    time; the others wait in a shuffled order."""
    rng = random.Random(seed)
    waiting = list(files)
    rng.shuffle(waiting)
    active: List[Tuple[Iterator[Sequence], int]] = []
    while waiting or active:
        while waiting and len(active) < max_open:
            path = waiting.pop()
            active.append((iter(read_splits([path], n_units)), max(path.stat().st_size, 1)))
        index = rng.choices(range(len(active)), weights=[size for _, size in active])[0]
        try:
            yield next(active[index][0])
        except StopIteration:
            del active[index]


def rows_of(ids: numpy.ndarray, batch_size: int) -> List[numpy.ndarray]:
    """A split's ids as (rows, n) arrays of contiguous text: batch_size rows (fewer for a
    short split), plus one row for what is left over, so no unit is left out."""
    n_rows = max(1, min(batch_size, len(ids) // 2))
    n = len(ids) // n_rows
    blocks = [ids[: n_rows * n].reshape(n_rows, n)]
    if len(ids) - n_rows * n >= 2:
        blocks.append(ids[n_rows * n :].reshape(1, -1))
    return blocks


def windows(n: int, bptt: int) -> List[Tuple[int, int]]:
    """(start, end) of the input windows of a row of n units (targets one step on)."""
    return [(start, min(start + bptt, n - 1)) for start in range(0, n - 1, bptt)]


def detach(state: Optional[State]) -> Optional[State]:
    return None if state is None else (state[0].detach(), state[1].detach())


def lm_loss(lm: DirectionalLM, rows: torch.Tensor, start: int, end: int, state: Optional[State]):
    """Summed cross-entropy (nats) of predicting rows[:, start+1:end+1] from rows[:, start:end]."""
    outputs, state = lm(rows[:, start:end], state)
    return lm.summed_loss(outputs, rows[:, start + 1 : end + 1]), state


@torch.no_grad()
def evaluate_lms(
    task: LMTask, model, files: List[Path], settings: Dict[str, Any], device: torch.device
) -> Dict[str, float]:
    """The held-out measure of each LM (on at most corpus[task.dev_budget] units)."""
    training, corpus = settings["training"], settings["corpus"]
    was_training = model.training
    model.eval()
    totals = {"forward": 0.0, "backward": 0.0}
    n_units = 0
    budget = corpus[task.dev_budget] or math.inf
    for piece in task.read_splits(files, split_size(training)):
        if n_units >= budget:
            break
        piece = piece[: int(min(len(piece), budget - n_units))]
        ids = task.encode(model, piece)
        for direction, lm, seq in (
            ("forward", model.forward_lm, ids),
            ("backward", model.backward_lm, ids[::-1].copy()),
        ):
            for block in rows_of(seq, training["batch_size"]):
                rows = torch.from_numpy(block).to(device)
                state = None
                for start, end in windows(rows.shape[1], training["bptt"]):
                    loss, state = lm_loss(lm, rows, start, end, state)
                    totals[direction] += float(loss)
        n_units += sum(
            block.shape[0] * (block.shape[1] - 1) for block in rows_of(ids, training["batch_size"])
        )
    model.train(was_training)
    if n_units == 0:
        raise ValueError("the held-out text is empty")
    forward, backward = (task.from_nats(totals[d] / n_units) for d in ("forward", "backward"))
    return {
        f"dev_{task.metric}_forward": forward,
        f"dev_{task.metric}_backward": backward,
        f"dev_{task.metric}": task.combine(forward, backward),
        f"dev_{task.unit}": n_units,
    }


def config_fingerprint(settings: Dict[str, Any]) -> Dict[str, Any]:
    training = {k: v for k, v in settings["training"].items() if k not in RESUMABLE_CHANGES}
    corpus = {k: v for k, v in settings["corpus"].items() if k != "dev"}
    return {
        "model": settings["model"],
        "corpus": {k: str(v) for k, v in corpus.items()},
        "training": training,
        "seed": settings["seed"],
    }


def optimizer_tensors(
    optimizer: torch.optim.Optimizer,
) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """An optimizer's state as named tensors plus msgpack-able metadata."""
    state = optimizer.state_dict()
    tensors, kinds = {}, {}
    for index, entry in state["state"].items():
        for key, value in entry.items():
            name = f"optimizer.{index}.{key}"
            if isinstance(value, torch.Tensor):
                tensors[name] = value
            else:
                kinds[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": kinds}


def load_optimizer_state(
    optimizer: torch.optim.Optimizer, tensors: Dict[str, torch.Tensor], meta: Dict[str, Any]
) -> None:
    state: Dict[int, Dict[str, Any]] = {}
    for name, value in list(tensors.items()) + list(meta["scalars"].items()):
        if name.startswith("optimizer."):
            _, index, key = name.split(".", 2)
            state.setdefault(int(index), {})[key] = value
    groups = meta["param_groups"]
    for group in groups:
        if "betas" in group:
            group["betas"] = tuple(group["betas"])
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def pretrain_lms(
    task: LMTask[LM],
    settings: Dict[str, Any],
    output_dir: Union[str, Path],
    *,
    resume: bool = False,
    gpu_id: int = -1,
    show_progress: bool = True,
) -> Dict[str, Any]:
    """Train (or, with resume, go on training) the forward and backward LMs of settings
    in output_dir: task.best_file (best held-out measure, or the last model without dev
    text), task.last_file, checkpoint.msgpack (everything a resume needs) and log.jsonl.
    Returns the final record of the log; stopped by SIGINT or SIGTERM, it holds the
    signal's name under "signal" (and the checkpoint is written). Launched by torchrun,
    each process trains on its share of every batch (see the module's docstring)."""
    ranks = launched_ranks()
    device = training_device(gpu_id, ranks)
    checkpoint_path = Path(output_dir) / CHECKPOINT
    repeat_grace = SIGNAL_REPEAT_GRACE if ranks.distributed else 0.0
    with process_group(ranks, device), StopOnSignals(checkpoint_path, repeat_grace) as signals:
        return _pretrain_lms(
            task, settings, Path(output_dir), resume, device, ranks, show_progress, signals
        )


def rng_names(rank: int) -> Tuple[str, str]:
    """The checkpoint's names of a rank's CPU and CUDA random states (rank 0's are those
    a single process writes)."""
    suffix = f".rank{rank}" if rank else ""
    return f"rng.torch{suffix}", f"rng.cuda{suffix}"


def random_states(device: torch.device) -> Dict[str, torch.Tensor]:
    """This process's random states (dropout draws from the CUDA one on a GPU)."""
    states = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        states["cuda"] = torch.cuda.get_rng_state(device)
    return states


def restore_random_states(
    tensors: Dict[str, torch.Tensor], ranks: Ranks, device: torch.device, seed: int
) -> None:
    """This rank's random states from a checkpoint; a rank the checkpoint has none for
    (it was written by fewer processes) is seeded with seed + rank."""
    cpu_name, cuda_name = rng_names(ranks.rank)
    if cpu_name not in tensors:
        torch.manual_seed(seed + ranks.rank)
        return
    torch.set_rng_state(tensors[cpu_name])
    if device.type == "cuda" and cuda_name in tensors:
        torch.cuda.set_rng_state(tensors[cuda_name], device)


def state_share(state: Optional[State], ranks: Ranks, device: torch.device) -> Optional[State]:
    """This rank's rows of a recurrent state of the whole batch, on device."""
    if state is None:
        return None
    share = row_share(state[0].shape[1], ranks)
    if share.start == share.stop:
        return None
    return (state[0][:, share].to(device), state[1][:, share].to(device))


def joined_states(states: Sequence[Optional[State]]) -> Optional[State]:
    """The whole batch's recurrent state from the ranks' (in rank order; None: no rows)."""
    present = [state for state in states if state is not None]
    if not present:
        return None
    return (
        torch.cat([state[0] for state in present], dim=1),
        torch.cat([state[1] for state in present], dim=1),
    )


def _pretrain_lms(
    task: LMTask[LM],
    settings: Dict[str, Any],
    output_dir: Path,
    resume: bool,
    device: torch.device,
    ranks: Ranks,
    show_progress: bool,
    signals: StopOnSignals,
) -> Dict[str, Any]:
    """pretrain_lms; signals take over SIGINT and SIGTERM once the training loop starts."""
    metric, unit = task.metric, task.unit
    say = msg if ranks.is_main else Printer(no_print=True)
    output_dir.mkdir(parents=True, exist_ok=True)
    train_files = text_files(settings["corpus"]["train"])
    dev_files = text_files(settings["corpus"]["dev"]) if settings["corpus"]["dev"] else None
    training = settings["training"]
    checkpoint_path = output_dir / CHECKPOINT
    log_path = output_dir / LOG
    best_key, units_key = f"best_dev_{metric}", f"train_{unit}"

    saved_optimizer = None
    # this rank's training loss since the last evaluation (rank 0 holds the others' after
    # every checkpoint)
    running = {"forward": 0.0, "backward": 0.0, "units": 0}
    if resume:
        if not checkpoint_path.exists():
            raise FileNotFoundError(f"--resume: there is no checkpoint at {checkpoint_path}")
        tensors, meta = read_tensor_file(checkpoint_path)
        if meta["fingerprint"] != config_fingerprint(settings):
            raise ValueError(
                f"--resume: the config differs from the checkpoint's in more than "
                f"{', '.join(RESUMABLE_CHANGES)}; start a new output directory instead"
            )
        source = str(checkpoint_path)
        # sizes checked against the checkpoint's tensors before the model is allocated
        model = load_checked_module(
            lambda: task.model_from_meta(meta["model"], source), tensors, source, prefix="model."
        )
        restore_random_states(tensors, ranks, device, settings["seed"])
        position = meta["position"]
        states = {
            d: state_share((tensors[f"state.{d}.h"], tensors[f"state.{d}.c"]), ranks, device)
            if f"state.{d}.h" in tensors
            else None
            for d in ("forward", "backward")
        }
        progress = meta["progress"]
        if "optimizer" in meta:
            saved_optimizer = (tensors, meta["optimizer"])
        if ranks.is_main:
            running.update(meta.get("running", {}))
            # a run killed between an evaluation's log record and its checkpoint logged
            # steps that the resumed run does again
            drop_log_after(log_path, progress["step"])
        say.info(
            f"Resuming at step {progress['step']} "
            f"(epoch {position['epoch']}, split {position['split']})"
        )
    else:
        if checkpoint_path.exists():
            raise FileExistsError(
                f"{output_dir} already holds a run ({CHECKPOINT}): use --resume to go on, "
                "or another output directory"
            )
        random.seed(settings["seed"])
        numpy.random.seed(settings["seed"])
        torch.manual_seed(settings["seed"])
        say.info(f"Counting the {unit} of {len(train_files)} file(s)")
        model = task.build_model(settings, train_files)
        if ranks.rank:
            torch.manual_seed(settings["seed"] + ranks.rank)  # its own dropout masks
        position = {"epoch": 0, "split": 0, "window": 0, "block": 0}
        states = {"forward": None, "backward": None}
        progress = {"step": 0, "seconds": 0.0, units_key: 0, best_key: None, "evals_since_best": 0}
        say.info(task.describe(model, settings))
    if ranks.distributed:
        say.info(
            f"{ranks.world_size} processes, each training on {1 / ranks.world_size:.0%} "
            f"of every batch of {training['batch_size']} rows"
        )
    model.to(device)
    broadcast_parameters(model, ranks)
    model.train()
    lms = cast(BiLM, model)  # the task's model: a BiCharLM or a BiWordLM
    parameters = list(model.parameters())
    optimizer = task.make_optimizer(parameters, training)
    if saved_optimizer is not None:
        load_optimizer_state(optimizer, *saved_optimizer)
    stop_rule = StopRule(
        training["max_steps"], training["max_epochs"], training["max_minutes"], training["patience"]
    )
    clock = RunClock(progress["seconds"])
    # the run time and the signal that every rank goes by (agree_on_stop after each step)
    agreed: Dict[str, Any] = {"seconds": clock.seconds, "signal": None}
    checkpoint_timer = CheckpointTimer(training["checkpoint_minutes"], agreed["seconds"])
    checkpointed = {"step": progress["step"] if resume else None}

    def agree() -> None:
        local_code = StopOnSignals.SIGNALS.index(signals.received) + 1 if signals.received else 0
        seconds, code = agree_on_stop(clock.seconds, local_code, ranks)
        agreed.update(
            seconds=seconds, signal=StopOnSignals.SIGNALS[int(code) - 1] if code else None
        )

    def provenance() -> Dict[str, Any]:
        return {
            "step": progress["step"],
            "epoch": position["epoch"],
            "seconds": round(agreed["seconds"], 1),
            units_key: progress[units_key],
            "train_files": [str(f) for f in train_files],
        }

    def pool_running() -> None:
        """Rank 0 takes over the other ranks' running loss (the sum is what counts)."""
        pooled = gather_to_main(dict(running), ranks)
        if ranks.distributed:
            for key in running:
                running[key] = sum(r[key] for r in pooled) if pooled is not None else 0

    def save_checkpoint() -> None:
        pool_running()
        local_states = {
            d: None if s is None else (s[0].cpu(), s[1].cpu()) for d, s in states.items()
        }
        gathered = gather_to_main((local_states, random_states(device)), ranks)
        if gathered is not None:
            tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
            for rank, (_, randoms) in enumerate(gathered):
                cpu_name, cuda_name = rng_names(rank)
                tensors[cpu_name] = randoms["torch"]
                if "cuda" in randoms:
                    tensors[cuda_name] = randoms["cuda"]
            for direction in states:
                state = joined_states([rank_states[direction] for rank_states, _ in gathered])
                if state is not None:
                    tensors[f"state.{direction}.h"], tensors[f"state.{direction}.c"] = state
            optim_tensors, optim_meta = optimizer_tensors(optimizer)
            tensors.update(optim_tensors)
            progress["seconds"] = agreed["seconds"]
            meta = {
                "fingerprint": config_fingerprint(settings),
                "model": lms.meta(),
                "position": position,
                "progress": progress,
                "optimizer": optim_meta,
                "running": running,
            }
            write_tensor_file(checkpoint_path, tensors, meta)
        checkpoint_timer.reset(agreed["seconds"])
        checkpointed["step"] = progress["step"]

    def checkpoint_between_evaluations(trigger: str) -> None:
        save_checkpoint()
        if ranks.is_main:
            append_log(log_path, {"event": "checkpoint", "trigger": trigger, **provenance()})

    def evaluate() -> Dict[str, Any]:
        """Rank 0 evaluates and writes the files while the others wait; the best score
        so far (patience counts on it) is then every rank's."""
        pool_running()
        record: Dict[str, Any] = {"event": "evaluate", **provenance()}
        if ranks.is_main:
            record.update(evaluate_and_save(record))
        running.update(forward=0.0, backward=0.0, units=0)
        save_checkpoint()
        best = broadcast_from_main({k: progress[k] for k in (best_key, "evals_since_best")}, ranks)
        progress.update(best)
        return record

    def evaluate_and_save(record: Dict[str, Any]) -> Dict[str, Any]:
        if running["units"]:
            record[f"train_{metric}_forward"] = task.from_nats(
                running["forward"] / running["units"]
            )
            record[f"train_{metric}_backward"] = task.from_nats(
                running["backward"] / running["units"]
            )
        if dev_files is not None:
            record.update(evaluate_lms(task, model, dev_files, settings, device))
            best = progress[best_key]
            if best is None or record[f"dev_{metric}"] < best:
                progress[best_key] = record[f"dev_{metric}"]
                progress["evals_since_best"] = 0
                lms.save(
                    output_dir / task.best_file,
                    **provenance(),
                    **{f"dev_{metric}": record[f"dev_{metric}"]},
                )
            else:
                progress["evals_since_best"] += 1
        else:
            lms.save(output_dir / task.best_file, **provenance())
        lms.save(output_dir / task.last_file, **provenance())
        append_log(log_path, record)
        return record

    def describe(record: Dict[str, Any]) -> str:
        parts = [f"step {record['step']}", f"epoch {record['epoch']}", f"{record['seconds']:.0f}s"]
        if f"train_{metric}_forward" in record:
            parts.append(
                f"train {metric} {record[f'train_{metric}_forward']:.3f}"
                f"/{record[f'train_{metric}_backward']:.3f}"
            )
        if f"dev_{metric}" in record:
            parts.append(
                f"dev {metric} {record[f'dev_{metric}_forward']:.3f}"
                f"/{record[f'dev_{metric}_backward']:.3f} (fwd/bwd)"
            )
        return ", ".join(parts)

    def stop_reason() -> Optional[str]:
        if agreed["signal"]:
            return agreed["signal"]
        return stop_rule.reason(
            step=progress["step"],
            epoch=position["epoch"],
            seconds=agreed["seconds"],
            evals_since_best=progress["evals_since_best"],
        )

    signals.install()
    bar = RunProgress(
        training["max_steps"],
        training["max_minutes"],
        progress["step"],
        clock.seconds,
        disable=not (show_progress and ranks.is_main),
    )
    last_record: Dict[str, Any] = {}
    stop = stop_reason()
    while stop is None:
        if training["interleave_files"]:
            seed = f"{settings['seed']}:{position['epoch']}"
            splits = interleaved_splits(task.read_splits, train_files, split_size(training), seed)
        else:
            splits = task.read_splits(train_files, split_size(training))
        for split_index, piece in enumerate(splits):
            if split_index < position["split"]:
                continue
            ids = task.encode(model, piece)
            blocks = {
                "forward": rows_of(ids, training["batch_size"]),
                "backward": rows_of(ids[::-1].copy(), training["batch_size"]),
            }
            for block_index in range(len(blocks["forward"])):
                if block_index < position["block"]:
                    continue
                n_rows = blocks["forward"][block_index].shape[0]
                share = row_share(n_rows, ranks)
                rows = {
                    d: torch.from_numpy(blocks[d][block_index][share]).to(device) for d in blocks
                }
                spans = windows(blocks["forward"][block_index].shape[1], training["bptt"])
                for window_index, (start, end) in enumerate(spans):
                    if window_index < position["window"]:
                        continue
                    optimizer.zero_grad()
                    n_units = n_rows * (end - start)  # the whole batch's, all ranks'
                    n_local_units = rows["forward"].shape[0] * (end - start)
                    for direction, lm in (
                        ("forward", lms.forward_lm),
                        ("backward", lms.backward_lm),
                    ):
                        if not n_local_units:
                            continue  # fewer rows than ranks: this one has none
                        loss, state = lm_loss(lm, rows[direction], start, end, states[direction])
                        (loss / n_units).backward()
                        states[direction] = detach(state)
                        running[direction] += float(loss.detach())
                    sum_gradients(parameters, ranks)
                    for lm in (lms.forward_lm, lms.backward_lm):
                        torch.nn.utils.clip_grad_norm_(lm.parameters(), training["grad_clip"])
                    optimizer.step()
                    running["units"] += n_local_units
                    progress[units_key] += n_units
                    progress["step"] += 1
                    position["window"] = window_index + 1
                    agree()
                    if running["units"]:
                        mean_nats = (
                            (running["forward"] + running["backward"]) / 2 / running["units"]
                        )
                        bar.update(
                            progress["step"],
                            agreed["seconds"],
                            **{
                                metric: f"{task.from_nats(mean_nats):.3f}",
                                f"{unit}_per_s": (
                                    f"{progress[units_key] / max(agreed['seconds'], 1e-9):,.0f}"
                                ),
                            },
                        )
                    if progress["step"] % training["eval_every"] == 0:
                        last_record = evaluate()
                        if ranks.is_main:
                            bar.write(describe(last_record))
                    elif agreed["signal"] or checkpoint_timer.due(agreed["seconds"]):
                        checkpoint_between_evaluations(agreed["signal"] or "time")
                    stop = stop_reason()
                    if stop is not None:
                        break
                if stop is not None:
                    break
                position.update(block=block_index + 1, window=0)
                states = {"forward": None, "backward": None}
            if stop is not None:
                break
            position.update(split=split_index + 1, block=0, window=0)
        else:
            position.update(epoch=position["epoch"] + 1, split=0, block=0, window=0)
            if progress["step"] == 0:
                raise ValueError(f"the training text has fewer than 2 {unit}: nothing to train on")
            stop = stop_reason()
    bar.close()
    if stop == agreed["signal"]:
        # no final evaluation (it can take minutes): the checkpoint is what a resume needs
        if checkpointed["step"] != progress["step"]:
            checkpoint_between_evaluations(stop)
        end_record = {
            "event": "end",
            "reason": stop,
            "signal": stop,
            **provenance(),
            best_key: progress[best_key],
        }
        if ranks.is_main:
            append_log(log_path, end_record)
        wait_for_main(ranks)
        say.warn(
            f"Stopped by {stop} at step {progress['step']}: the checkpoint is written "
            f"({checkpoint_path}); go on with --resume"
        )
        return {**last_record, **end_record}
    if not last_record or last_record["step"] != progress["step"]:
        last_record = evaluate()
        say.info(describe(last_record))
    end_record = {"event": "end", "reason": stop, **provenance(), best_key: progress[best_key]}
    if ranks.is_main:
        append_log(log_path, end_record)
    wait_for_main(ranks)
    say.good(f"Stopped by {stop}; saved {output_dir / task.best_file}")
    return {**last_record, **end_record}


def settings_seed(config: Union[Config, Dict[str, Any]]) -> int:
    return int((config.get("system") or {}).get("seed", 0) or 0)
