"""What every LM pretraining run shares: when to evaluate, when to stop, when to write a
checkpoint, the clock, the signals that stop a run, and the log."""

import json
import os
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Dict, Optional, Union

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


def append_log(path: Path, record: Dict[str, Any]) -> None:
    """One JSON line per event (evaluations, the end of the run)."""
    with Path(path).open("a", encoding="utf8") as file_:
        file_.write(json.dumps(record) + "\n")


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
    nothing."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self) -> None:
        self.received: Optional[str] = None
        self.previous: Dict[int, SignalHandler] = {}

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
            self.restore()
            raise KeyboardInterrupt(f"{name} again: aborted without a checkpoint")
        self.received = name
        # os.write, not print: a handler may run in the middle of another write to stderr
        notice = f"\n{name}: stopping after this step to write a checkpoint (again: abort)\n"
        try:
            os.write(2, notice.encode())
        except OSError:
            pass
