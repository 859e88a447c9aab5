"""The channel by which training loggers tell learning-rate schedules the dev score.

spaCy's training loop hands each evaluation's score to the logger only, and steps
schedules without arguments, so a schedule that follows the dev score (TagLM's
spacy_lmcrf.drop_after_best_dev.v1) registers itself as a listener when it is created
(when [training] is resolved), and the next logger that is set up for a training run
claims the newest listener not yet claimed and tells it each evaluation. The loggers that
do so are spacy_lmcrf.TimedLogger.v1 and spacy_lmcrf.DevScoreLogger.v1 (which wraps any
other logger). A listener that is never claimed finds out at its first step: see
DevScoreListener.check_connected.
"""

import weakref
from typing import Any, Dict, List, Optional


class DevScoreListener:
    """Base for what follows the dev score: connected when a logger claims it."""

    connected: bool = False

    def observe_dev_score(self, score: float, *, step: int, epoch: int) -> None:
        raise NotImplementedError

    def check_connected(self, owner: str) -> None:
        if not self.connected:
            raise RuntimeError(
                f"{owner} follows the dev score, but no training logger reports it: use "
                '[training.logger] @loggers = "spacy_lmcrf.TimedLogger.v1", or wrap your logger in '
                '"spacy_lmcrf.DevScoreLogger.v1" (see configs/taglm_ner.cfg)'
            )


_unclaimed: List["weakref.ReferenceType[DevScoreListener]"] = []


def register_listener(listener: DevScoreListener) -> None:
    """Called by a listener when it is created."""
    _unclaimed.append(weakref.ref(listener))


def claim_listeners() -> List[DevScoreListener]:
    """The newest listener created since the last claim (if still alive), now connected.

    Only the newest: `spacy train` resolves [training] twice (to initialize the pipeline,
    then to train it, resolving the optimizer and the logger together), and the first
    resolution's schedule lives on in nlp._optimizer without being stepped."""
    listeners = [listener for listener in (ref() for ref in _unclaimed) if listener is not None]
    _unclaimed.clear()
    for listener in listeners[-1:]:
        listener.connected = True
    return listeners[-1:]


def publish_dev_score(listeners: List[DevScoreListener], info: Optional[Dict[str, Any]]) -> None:
    """Tell listeners the evaluation in a logger's info (None between evaluations)."""
    if info is None or info.get("score") is None:
        return
    for listener in listeners:
        listener.observe_dev_score(
            float(info["score"]), step=int(info["step"]), epoch=int(info["epoch"])
        )
