"""Pretraining the forward and backward character LMs on raw text, with truncated
backpropagation through time (Akbik et al. 2018, section 3.2).

Why not `spacy pretrain`: its objectives see batches of Docs and are stepped by spaCy's
loop, which has no held-out evaluation, carries no recurrent state from one batch to
the next (truncated BPTT needs it), and saves only a tok2vec layer's bytes. So this is
a command of its own (`spacy lmcrf pretrain-char-lm`), configured through spaCy's
config system, whose result is one file that spacy_lmcrf.ContextualStringEmbeddings.v1
reads at initialization.

The loop (streamed splits, rows, windows, checkpoints, evaluation) is
spacy_lmcrf.pretrain.lm_training's, shared with the word LMs; what is the character
LMs' own is here: the text read as characters, the vocabulary, plain SGD, and bits per
character on the held-out text.
"""

import math
from pathlib import Path
from typing import Any, Dict, Optional, Union

import torch
from spacy.util import load_config
from thinc.api import Config

from ..ml.modules.char_lm import BiCharLM
from ..ml.modules.char_vocab import CharVocab
from .lm_training import (
    LOOP_DEFAULTS,
    LMTask,
    check_loop_settings,
    pretrain_lms,
    settings_seed,
)
from .settings import read_section
from .text import read_chunks, read_lines

MODEL_DEFAULTS = {"embedding_size": 100, "hidden_size": 2048, "num_layers": 1, "dropout": 0.25}
CORPUS_DEFAULTS = {"train": None, "dev": None, "char_coverage": 0.999999, "dev_max_chars": 0}
TRAINING_DEFAULTS = {
    "bptt": 250,
    "batch_size": 100,
    "learn_rate": 20.0,
    "grad_clip": 0.25,
    "split_windows": 10,
    **LOOP_DEFAULTS,
}

BEST = "char_lm.msgpack"
LAST = "char_lm-last.msgpack"
LN2 = math.log(2)


def read_settings(config: Union[Config, Dict[str, Any]], source: str = "config") -> Dict[str, Any]:
    settings: Dict[str, Any] = {
        "model": read_section(config, "model", MODEL_DEFAULTS, source),
        "corpus": read_section(config, "corpus", CORPUS_DEFAULTS, source),
        "training": read_section(config, "training", TRAINING_DEFAULTS, source),
        "seed": settings_seed(config),
    }
    check_loop_settings(settings, source)
    return settings


def _build(settings: Dict[str, Any], train_files) -> BiCharLM:
    vocab = CharVocab.from_lines(read_lines(train_files), settings["corpus"]["char_coverage"])
    return BiCharLM(vocab, **settings["model"])


def _describe(model: BiCharLM, settings: Dict[str, Any]) -> str:
    return (
        f"{len(model.vocab)} characters (unknown symbol included); LSTM {model.hidden_size} x "
        f"{settings['model']['num_layers']}; "
        f"{sum(p.numel() for p in model.parameters()):,} parameters"
    )


CHAR_LM_TASK = LMTask(
    metric="bpc",
    unit="chars",
    from_nats=lambda nats: nats / LN2,
    combine=lambda forward, backward: (forward + backward) / 2,
    best_file=BEST,
    last_file=LAST,
    dev_budget="dev_max_chars",
    read_splits=read_chunks,
    build_model=_build,
    model_from_meta=BiCharLM.from_meta,
    encode=lambda model, text: model.vocab.encode(text),
    make_optimizer=lambda params, training: torch.optim.SGD(params, lr=training["learn_rate"]),
    describe=_describe,
)


def pretrain_char_lm(
    config: Union[Config, Dict[str, Any]],
    output_dir: Union[str, Path],
    *,
    resume: bool = False,
    gpu_id: int = -1,
    show_progress: bool = True,
) -> Dict[str, Any]:
    """Train (or, with resume, go on training) the forward and backward character LMs
    of config in output_dir: char_lm.msgpack (best dev bits per character, or the last
    model without dev text), char_lm-last.msgpack, checkpoint.msgpack (everything a
    resume needs) and log.jsonl. Returns the final record of the log."""
    return pretrain_lms(
        CHAR_LM_TASK,
        read_settings(config),
        output_dir,
        resume=resume,
        gpu_id=gpu_id,
        show_progress=show_progress,
    )


def load_pretraining_config(
    path: Union[str, Path], overrides: Optional[Dict[str, Any]] = None
) -> Config:
    return load_config(path, overrides=overrides or {}, interpolate=True)
