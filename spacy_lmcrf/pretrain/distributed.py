"""LM pretraining on several processes: torchrun's environment, the process group, and
the few collectives the loop needs (lm_training describes how the work is shared).

Launched by torchrun (RANK, WORLD_SIZE and LOCAL_RANK set, WORLD_SIZE > 1), a run joins
a process group (NCCL on GPUs, gloo on CPU); otherwise it is a single process and every
function here returns its input, so the single-process loop is unchanged.

Gradients are summed by one explicit all-reduce per step rather than by wrapping the
LMs in DistributedDataParallel: the loop runs two LMs per step with recurrent state
carried between steps and calls their loss outside forward(), which DDP's hooks
(bucketed, one reduction per forward/backward pair) do not fit; one flat all-reduce after
both backward passes is simple, keeps the parameter names (no "module." prefix), lets the
gradient be exactly the single-process one (each rank scales its loss by the whole
batch's size, so the sum is the mean over the batch), and keeps "no gradient" (a
parameter no rank used, e.g. an adaptive softmax's cluster) as None for the optimizer,
as a single process has it. The cost is that the all-reduce does not overlap the
backward pass.
"""

import os
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence

import torch
import torch.distributed as dist

# rank 0 evaluates on the held-out text while the others wait: give it time
TIMEOUT = timedelta(hours=2)


@dataclass(frozen=True)
class Ranks:
    """The process's place in a run.

    rank (int): 0 .. world_size - 1; rank 0 evaluates and writes the files.
    world_size (int): the number of processes (1: not distributed).
    local_rank (int): the rank on this machine (its GPU's index).
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_ranks(environ: Mapping[str, str] = os.environ) -> Ranks:
    """The ranks torchrun gives this process (RANK, WORLD_SIZE, LOCAL_RANK), or a single
    process's without them."""
    world_size = int(environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Ranks()
    rank = int(environ["RANK"])
    return Ranks(rank, world_size, int(environ.get("LOCAL_RANK", rank)))


def training_device(gpu_id: int, ranks: Ranks) -> torch.device:
    """The device of this rank: cuda:LOCAL_RANK when several processes run on GPUs
    (--gpu-id given), cuda:gpu_id for one process, else the CPU."""
    if gpu_id < 0:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ValueError(f"--gpu-id {gpu_id}: torch sees no CUDA device")
    device = torch.device(f"cuda:{ranks.local_rank if ranks.distributed else gpu_id}")
    torch.cuda.set_device(device)  # where NCCL's object collectives put their tensors
    return device


@contextmanager
def process_group(ranks: Ranks, device: torch.device) -> Iterator[None]:
    """Join the run's process group for the duration of the context (nothing to do for a
    single process)."""
    if not ranks.distributed:
        yield
        return
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, rank=ranks.rank, world_size=ranks.world_size, timeout=TIMEOUT)
    try:
        yield
    finally:
        dist.destroy_process_group()


def row_share(n_rows: int, ranks: Ranks) -> slice:
    """The rows of a batch of n_rows that this rank trains on: a contiguous share, the
    shares in rank order and as even as n_rows allows (some are empty when n_rows <
    world_size)."""
    return slice(
        n_rows * ranks.rank // ranks.world_size, n_rows * (ranks.rank + 1) // ranks.world_size
    )


def sum_gradients(parameters: Sequence[torch.nn.Parameter], ranks: Ranks) -> None:
    """Replace every parameter's gradient by the sum over the ranks (one all-reduce);
    a parameter no rank has a gradient for keeps None."""
    if not ranks.distributed:
        return
    reference = parameters[0]
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    has_grad = torch.tensor(
        [p.grad is not None for p in parameters], dtype=reference.dtype, device=reference.device
    )
    flat = torch.cat([g.reshape(-1) for g in grads] + [has_grad])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for index, param in enumerate(parameters):
        size = param.numel()
        used = bool(flat[len(flat) - len(parameters) + index] > 0)
        param.grad = flat[offset : offset + size].view_as(param).clone() if used else None
        offset += size


def broadcast_parameters(module: torch.nn.Module, ranks: Ranks) -> None:
    """Give every rank rank 0's weights."""
    if ranks.distributed:
        for tensor in module.state_dict().values():
            dist.broadcast(tensor, src=0)


def agree_on_stop(seconds: float, signal_code: int, ranks: Ranks) -> List[float]:
    """[run time, signal] that every rank goes by: the latest clock of all ranks, and the
    highest signal code (0: none), so that a signal or the time budget on one rank stops
    them all after the same step."""
    if not ranks.distributed:
        return [seconds, float(signal_code)]
    device = torch.device("cuda") if dist.get_backend() == "nccl" else torch.device("cpu")
    values = torch.tensor([seconds, float(signal_code)], dtype=torch.float64, device=device)
    dist.all_reduce(values, op=dist.ReduceOp.MAX)
    return values.tolist()


def gather_to_main(value: Any, ranks: Ranks) -> Optional[List[Any]]:
    """Every rank's value, in rank order, on rank 0 (None on the others)."""
    if not ranks.distributed:
        return [value]
    gathered: Optional[List[Any]] = [None] * ranks.world_size if ranks.is_main else None
    dist.gather_object(value, gathered, dst=0)
    return gathered


def broadcast_from_main(value: Dict[str, Any], ranks: Ranks) -> Dict[str, Any]:
    """Rank 0's value, on every rank."""
    if not ranks.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def wait_for_main(ranks: Ranks) -> None:
    """Every rank waits here until rank 0 comes (at the end of a run: until its files
    are written, as torchrun stops the others once one process has ended)."""
    if ranks.distributed:
        dist.barrier()
