"""Training callbacks: stop `spacy train` cleanly when a wall-clock budget is spent; run
several [training.before_update] callbacks; write the license into a pipeline's meta.
(The heap trimming callback, spacy_lmcrf.trim_heap.v1, is in training/memory.py.)"""

import time
from typing import Any, Callable, Dict

from spacy.language import Language
from spacy.util import registry


class TrainingBudgetSpent(SystemExit):
    """Raised between two training steps once the budget is spent.

    A SystemExit with status 0: spaCy's training loop saves model-last in its
    `finally` clause (model-best was saved at every improvement) and
    `spacy train` then exits successfully. Code that calls
    spacy.training.loop.train itself can catch it.
    """

    def __init__(self, message: str) -> None:
        super().__init__(0)
        self.message = message


class TrainingScheduleDone(SystemExit):
    """Raised when a learning-rate schedule's last phase has ended
    (spacy_lmcrf.drop_after_best_dev.v1): like TrainingBudgetSpent, a SystemExit with
    status 0, so spaCy saves model-last and `spacy train` exits successfully."""

    def __init__(self, message: str) -> None:
        super().__init__(0)
        self.message = message


@registry.callbacks("spacy_lmcrf.stop_after_minutes.v1")
def stop_after_minutes(minutes: float) -> Callable[[Language, Dict[str, Any]], None]:
    """A [training.before_update] callback that ends training after `minutes`.

    The clock starts at the first training step (after initialization: vectors,
    vocabularies); the check runs before every update, so training stops at the
    first step that starts after the budget: the overrun is at most one update,
    plus the evaluation and checkpoint that may be running when the budget ends.

    minutes (float): the wall-clock budget; > 0.
    """
    if not minutes > 0:
        raise ValueError(f"stop_after_minutes: minutes must be > 0, got {minutes}")
    budget = 60.0 * minutes
    start = None

    def before_update(nlp: Language, args: Dict[str, Any]) -> None:
        nonlocal start
        now = time.perf_counter()
        if start is None:
            start = now
        elif now - start >= budget:
            message = (
                f"Stopping: the {minutes:g}-minute budget is spent "
                f"(step {args['step']}, epoch {args['epoch']}, {now - start:.1f} s)"
            )
            print(message, flush=True)
            raise TrainingBudgetSpent(message)

    return before_update


@registry.callbacks("spacy_lmcrf.before_update_all.v1")
def before_update_all(
    *callbacks: Callable[[Language, Dict[str, Any]], None],
) -> Callable[[Language, Dict[str, Any]], None]:
    """Several [training.before_update] callbacks (spaCy takes one), run in order:

        [training.before_update]
        @callbacks = "spacy_lmcrf.before_update_all.v1"

        [training.before_update.*.trim_heap]
        @callbacks = "spacy_lmcrf.trim_heap.v1"

        [training.before_update.*.budget]
        @callbacks = "spacy_lmcrf.stop_after_minutes.v1"
        minutes = 30

    *callbacks (Callable[[Language, Dict[str, Any]], None]): the callbacks.
    """

    def before_update(nlp: Language, args: Dict[str, Any]) -> None:
        for callback in callbacks:
            callback(nlp, args)

    return before_update


@registry.callbacks("spacy_lmcrf.set_meta.v1")
def set_meta(license: str = "MIT") -> Callable[[Language], Language]:
    """An [initialize.after_init] callback that writes `license` into nlp.meta.

    spaCy builds a pipeline's meta (meta.json, `nlp.meta`) from the Language object, not
    from the config, so the shipped configs set it here: `spacy train` runs the callback
    once, when it initializes the pipeline, and model-best / model-last carry the
    license in meta.json (a loaded pipeline reads it back without running the callback).
    `spacy package` then uses it too. The default is this package's license (MIT, as
    spaCy's); a pipeline is also bound by its training data's terms, so set the license
    your data allow (`--initialize.after_init.license ...`).

    license (str): the value of nlp.meta["license"].
    """

    def after_init(nlp: Language) -> Language:
        nlp.meta["license"] = license
        return nlp

    return after_init
