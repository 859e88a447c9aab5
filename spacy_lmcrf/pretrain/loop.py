"""What every LM pretraining run shares: when to evaluate, when to stop, the clock and the log."""
import json
import time
from pathlib import Path
from typing import Any, Dict, Optional


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

    def __init__(self, max_steps: int = 0, max_epochs: int = 0, max_minutes: float = 0, patience: int = 0) -> None:
        for name, value in (("max_steps", max_steps), ("max_epochs", max_epochs),
                            ("max_minutes", max_minutes), ("patience", patience)):
            if value < 0:
                raise ValueError(f"{name} must be 0 (no limit) or positive, got {value}")
        self.max_steps = max_steps
        self.max_epochs = max_epochs
        self.max_minutes = max_minutes
        self.patience = patience

    def reason(self, *, step: int, epoch: int, seconds: float, evals_since_best: int) -> Optional[str]:
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
