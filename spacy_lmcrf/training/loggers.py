"""Training loggers: spaCy's console table plus a timed JSON-lines record of every evaluation."""

import json
import math
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

from spacy.language import Language
from spacy.training.loggers import console_logger_v3
from spacy.util import registry

from .dev_scores import claim_listeners, publish_dev_score

LogStep = Callable[[Optional[Dict[str, Any]]], None]

# (steps completed, seconds) of the run that a logger set up now continues (a resumed
# `spacy lmcrf train`), or None: see resumed_run
_resumed: Optional[Tuple[int, float]] = None


@contextmanager
def resumed_run(steps: int, seconds: float) -> Iterator[None]:
    """Loggers set up inside the context continue a run resumed after `steps` completed
    steps and `seconds` of training: spacy_lmcrf.TimedLogger.v1 keeps its file's
    evaluations of those steps (dropping any that the stopped run logged later), appends,
    and counts steps and seconds on from there.

    steps (int): the steps completed before the resume.
    seconds (float): the seconds of training before the resume.
    """
    global _resumed
    _resumed = (steps, seconds)
    try:
        yield
    finally:
        _resumed = None


@registry.loggers("spacy_lmcrf.TimedLogger.v1")
def timed_logger(
    path: Union[str, Path],
    progress_bar: bool = False,
    console_output: bool = True,
) -> Callable[[Language, IO, IO], Tuple[LogStep, Callable[[], None]]]:
    """spaCy's ConsoleLogger, plus one JSON line per evaluation appended to `path`.

    Evaluation lines hold "event": "evaluate", "seconds" (wall-clock since
    training started, evaluations and checkpoint saving included), "epoch",
    "step", "words" (training words seen), "score" (the weighted score),
    "is_best", "scores" (every other score, as spaCy's evaluation returns them)
    and "losses". Each evaluation's score is also told to the schedules that follow
    it (spacy_lmcrf.training.dev_scores). When training ends (finished, stopped by
    a callback or by an error) one last line holds "event": "end", "seconds" and
    "steps" (the number of completed training steps). The file is truncated when training
    starts and flushed after every line, so it can be read while training runs.

    In a config: [training.logger] @loggers = "spacy_lmcrf.TimedLogger.v1",
    path = "training/log.jsonl"; or on the command line of `spacy train`:
    --training.logger.@loggers spacy_lmcrf.TimedLogger.v1 --training.logger.path PATH.

    path (Union[str, Path]): the JSON-lines file (parent folders are created).
    progress_bar (bool): show the console logger's progress bar.
    console_output (bool): print the console logger's table.
    """
    console = console_logger_v3(
        progress_bar="eval" if progress_bar else None, console_output=console_output
    )
    path = Path(path)

    def setup(
        nlp: Language, stdout: IO = sys.stdout, stderr: IO = sys.stderr
    ) -> Tuple[LogStep, Callable[[], None]]:
        console_step, console_finalize = console(nlp, stdout, stderr)
        listeners = claim_listeners()
        path.parent.mkdir(parents=True, exist_ok=True)
        n_steps, seconds_before = _resumed if _resumed is not None else (0, 0.0)
        kept = records_before(path, n_steps) if _resumed is not None else []
        stream = path.open("w", encoding="utf8")
        start = time.perf_counter() - seconds_before

        def write(record: Dict[str, Any]) -> None:
            stream.write(json.dumps(record) + "\n")
            stream.flush()

        for record in kept:
            write(record)

        def log_step(info: Optional[Dict[str, Any]]) -> None:
            nonlocal n_steps
            n_steps += 1
            console_step(info)
            if info is not None:
                write(evaluation_record(info, time.perf_counter() - start))
            publish_dev_score(listeners, info)

        def finalize() -> None:
            console_finalize()
            write({"event": "end", "seconds": time.perf_counter() - start, "steps": n_steps})
            stream.close()

        return log_step, finalize

    return setup


@registry.loggers("spacy_lmcrf.DevScoreLogger.v1")
def dev_score_logger(
    logger: Callable[[Language, IO, IO], Tuple[LogStep, Callable[[], None]]],
) -> Callable[[Language, IO, IO], Tuple[LogStep, Callable[[], None]]]:
    """Any training logger (e.g. spacy.ConsoleLogger.v1), that also tells each
    evaluation's score to the schedules that follow it (spacy_lmcrf.training.dev_scores), such as
    spacy_lmcrf.drop_after_best_dev.v1. spacy_lmcrf.TimedLogger.v1 does so itself.

    logger (Callable): the logger to wrap, as [training.logger.logger] in a config.
    """

    def setup(
        nlp: Language, stdout: IO = sys.stdout, stderr: IO = sys.stderr
    ) -> Tuple[LogStep, Callable[[], None]]:
        inner_step, inner_finalize = logger(nlp, stdout, stderr)
        listeners = claim_listeners()

        def log_step(info: Optional[Dict[str, Any]]) -> None:
            inner_step(info)
            publish_dev_score(listeners, info)

        return log_step, inner_finalize

    return setup


def records_before(path: Path, steps: int) -> List[Dict[str, Any]]:
    """The evaluation records of path for the first `steps` steps (none if no file; a
    line cut short by a killed process is left out)."""
    if not path.exists():
        return []
    records = []
    for line in path.read_text(encoding="utf8").splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return [r for r in records if r.get("event") == "evaluate" and r["step"] < steps]


def evaluation_record(info: Dict[str, Any], seconds: float) -> Dict[str, Any]:
    """The JSON-ready record of one evaluation from the training loop's info dict."""
    best = max(score for score, _ in info["checkpoints"])
    return {
        "event": "evaluate",
        "seconds": seconds,
        "epoch": info["epoch"],
        "step": info["step"],
        "words": info["words"],
        "score": _jsonable(info["score"]),
        "is_best": info["score"] == best,
        "scores": _jsonable(info["other_scores"]),
        "losses": _jsonable(info["losses"]),
    }


def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy/torch scalars become floats, NaN/inf become None."""
    if isinstance(value, dict):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item) for item in value]
    if value is None or isinstance(value, (bool, str, int)):
        return value
    number = float(value)
    return number if math.isfinite(number) else None
