"""What every LM pretraining run shares: when to evaluate, when to stop, when to write a
checkpoint, the clock, the signals that stop a run, the progress bar, and the log."""

import json
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import IO, Any, Callable, Dict, Optional, Union

from tqdm import tqdm

SignalHandler = Union[Callable[[int, Optional[FrameType]], Any], int, None]


class RunClock:
    """Wall-clock seconds of a run, continued across resumes."""

    def __init__(self, elapsed: float = 0.0) -> None:
        self.offset = elapsed
        self.started = time.perf_counter()

    @property
    def seconds(self) -> float:
        return self.offset + time.perf_counter() - self.started


class StopRule:
    """Stop after max_steps, max_epochs or max_minutes (0 = no limit), or after
    `patience` evaluations without a better dev score (0 = never)."""

    def __init__(
        self, max_steps: int = 0, max_epochs: int = 0, max_minutes: float = 0, patience: int = 0
    ) -> None:
        for name, value in (
            ("max_steps", max_steps),
            ("max_epochs", max_epochs),
            ("max_minutes", max_minutes),
            ("patience", patience),
        ):
            if value < 0:
                raise ValueError(f"{name} must be 0 (no limit) or positive, got {value}")
        self.max_steps = max_steps
        self.max_epochs = max_epochs
        self.max_minutes = max_minutes
        self.patience = patience

    def reason(
        self, *, step: int, epoch: int, seconds: float, evals_since_best: int
    ) -> Optional[str]:
        """Why training stops now, or None to go on. `epoch` counts completed epochs."""
        if self.max_steps and step >= self.max_steps:
            return f"max_steps ({self.max_steps})"
        if self.max_epochs and epoch >= self.max_epochs:
            return f"max_epochs ({self.max_epochs})"
        if self.max_minutes and seconds >= 60 * self.max_minutes:
            return f"max_minutes ({self.max_minutes})"
        if self.patience and evals_since_best >= self.patience:
            return f"patience ({self.patience} evaluations without a better dev score)"
        return None


def budget_spent(step: int, seconds: float, max_steps: int, max_minutes: float) -> float:
    """The share of a run's budget spent, from 0 to 1: the larger of the step budget's
    share (max_steps) and the time budget's (max_minutes), as the run stops at whichever
    ends first; a budget of 0 is no limit (both 0: always 0)."""
    shares = [0.0]
    if max_steps:
        shares.append(step / max_steps)
    if max_minutes:
        shares.append(seconds / (60 * max_minutes))
    return min(1.0, max(shares))


class RunProgress:
    """The progress bar of a run, with a remaining time wherever the run has a budget.

    With a time budget (max_minutes), the bar is the percentage of the budget spent
    (budget_spent: time or steps, whichever ends first), so tqdm's remaining time is
    when the budget runs out, estimated from the rate so far; the step is shown beside
    it. Otherwise it counts steps, out of max_steps if set (tqdm's own remaining time),
    or with no total and no remaining time. max_epochs and patience may end a run
    sooner than the bar says.

    max_steps (int), max_minutes (float): the run's budgets (0: no limit).
    step (int), seconds (float): where the run starts (a resumed run: not at 0).
    disable (bool): show nothing.
    file (Optional[IO]): where the bar is drawn (tqdm's default: stderr).
    """

    def __init__(
        self,
        max_steps: int,
        max_minutes: float,
        step: int = 0,
        seconds: float = 0.0,
        *,
        disable: bool = False,
        file: Optional[IO] = None,
    ) -> None:
        self.max_steps = max_steps
        self.max_minutes = max_minutes
        if max_minutes:
            budget = f"{max_minutes:g} min" + (f" or {max_steps} steps" if max_steps else "")
            self.bar = tqdm(
                total=100,
                initial=self.position(step, seconds),
                desc=budget,
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {elapsed}<{remaining}{postfix}",
                disable=disable,
                file=file,
                dynamic_ncols=True,
            )
        else:
            self.bar = tqdm(
                total=max_steps or None,
                initial=step,
                unit="step",
                disable=disable,
                file=file,
                dynamic_ncols=True,
            )

    @property
    def by_time(self) -> bool:
        """Whether the bar measures the budget in percent (there is a time budget)."""
        return bool(self.max_minutes)

    def position(self, step: int, seconds: float) -> float:
        """The bar's position after `step` steps and `seconds` of run time."""
        if self.by_time:
            return 100 * budget_spent(step, seconds, self.max_steps, self.max_minutes)
        return step

    def update(self, step: int, seconds: float, **postfix: str) -> None:
        """Move the bar to `step` steps and `seconds` of run time, showing postfix."""
        if self.by_time:
            postfix = {"step": str(step), **postfix}
        self.bar.set_postfix(postfix, refresh=False)
        self.bar.update(self.position(step, seconds) - self.bar.n)

    def write(self, line: str) -> None:
        """Print a line above the bar."""
        self.bar.write(line)

    def close(self) -> None:
        self.bar.close()


def append_log(path: Path, record: Dict[str, Any]) -> None:
    """One JSON line per event (evaluations, the end of the run)."""
    with Path(path).open("a", encoding="utf8") as file_:
        file_.write(json.dumps(record) + "\n")


def drop_log_after(path: Path, step: int) -> None:
    """Remove the records of steps after `step` from the log at path (if there is one)."""
    path = Path(path)
    if not path.exists():
        return
    lines = path.read_text(encoding="utf8").splitlines(keepends=True)
    kept = [line for line in lines if json.loads(line).get("step", 0) <= step]
    if len(kept) < len(lines):
        path.write_text("".join(kept), encoding="utf8")


class CheckpointTimer:
    """When the next checkpoint between evaluations is due: `minutes` of run time after
    the last one (0 = never; checkpoints at evaluations only)."""

    def __init__(self, minutes: float, now: float) -> None:
        if minutes < 0:
            raise ValueError(f"checkpoint_minutes must be 0 (off) or positive, got {minutes}")
        self.interval = 60.0 * minutes
        self.last = now

    def due(self, now: float) -> bool:
        """Whether a checkpoint is due at run time `now` (seconds)."""
        return self.interval > 0 and now - self.last >= self.interval

    def reset(self, now: float) -> None:
        """A checkpoint was written at run time `now` (seconds)."""
        self.last = now


class StopOnSignals:
    """A context in which, once install() has run, SIGINT (Ctrl-C) and SIGTERM ask the
    run to stop instead of killing it: the first sets `received` (the signal's name),
    which the loop checks after every step to write a checkpoint and end; a second one
    aborts at once (KeyboardInterrupt). Leaving the context restores the previous
    handlers. Outside the main thread (where Python cannot handle signals) it does
    nothing.

    checkpoint_path (Optional[Path]): where the checkpoint goes, named in the notice
        printed when a signal comes.
    repeat_grace (float): seconds after the first signal in which another is the same
        request, not an abort (under torchrun, Ctrl-C reaches a worker twice: from the
        terminal and forwarded by torchrun).
    """

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self, checkpoint_path: Optional[Path] = None, repeat_grace: float = 0.0) -> None:
        self.received: Optional[str] = None
        self.received_at = 0.0
        self.previous: Dict[int, SignalHandler] = {}
        self.checkpoint_path = checkpoint_path
        self.repeat_grace = repeat_grace

    def __enter__(self) -> "StopOnSignals":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.restore()

    def install(self) -> None:
        """Take over SIGINT and SIGTERM (until restore() or the end of the context)."""
        if threading.current_thread() is not threading.main_thread():
            return
        for name in self.SIGNALS:
            signum = getattr(signal, name, None)
            if signum is not None and signum not in self.previous:
                self.previous[signum] = signal.signal(signum, self.handle)

    def restore(self) -> None:
        """Put the handlers back that install() replaced."""
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}

    def handle(self, signum: int, frame: Optional[FrameType]) -> None:
        name = signal.Signals(signum).name
        if self.received is not None:
            if time.monotonic() - self.received_at < self.repeat_grace:
                return
            self.restore()
            raise KeyboardInterrupt(f"{name} again: aborted without a checkpoint")
        self.received = name
        self.received_at = time.monotonic()
        # os.write, not print: a handler may run in the middle of another write to stderr
        where = f" to {self.checkpoint_path}" if self.checkpoint_path is not None else ""
        notice = f"\n{name}: stopping after this step to write a checkpoint{where} (again: abort)\n"
        try:
            os.write(2, notice.encode())
        except OSError:
            pass
