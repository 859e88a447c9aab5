"""Pretraining the forward and backward word-level LMs of TagLM (Peters et al. 2017,
section 3: LSTM-2048-512, token embeddings in, a softmax over the vocabulary out) on raw
text, with truncated backpropagation through time.

The loop is spacy_lmcrf.pretrain.lm_training's, shared with the character LMs; what is
the word LMs' own is here: the text read as whitespace tokens with an end-of-line token
after every line, a vocabulary of the frequent words plus <unk>, a full or adaptive
softmax, the optimizer, and perplexity on the held-out text.
"""

import math
from pathlib import Path
from typing import Any, Dict, Union

import torch
from thinc.api import Config

from ..ml.modules.word_lm import BiWordLM
from ..ml.modules.word_vocab import WordVocab
from .lm_training import LOOP_DEFAULTS, LMTask, check_loop_settings, pretrain_lms, settings_seed
from .settings import read_section
from .text import read_lines, read_token_chunks

MODEL_DEFAULTS = {
    "embedding_size": 128,
    "hidden_size": 512,
    "projection_size": 128,
    "num_layers": 1,
    "dropout": 0.1,
    "cutoffs": [],
}
CORPUS_DEFAULTS = {"train": None, "dev": None, "min_count": 1, "max_vocab": 0, "dev_max_tokens": 0}
TRAINING_DEFAULTS = {
    "optimizer": "adam",
    "bptt": 20,
    "batch_size": 64,
    "learn_rate": 0.001,
    "grad_clip": 1.0,
    "split_windows": 20,
    **LOOP_DEFAULTS,
}
OPTIMIZERS = {"adam": torch.optim.Adam, "adagrad": torch.optim.Adagrad, "sgd": torch.optim.SGD}

BEST = "word_lm.msgpack"
LAST = "word_lm-last.msgpack"


def read_settings(config: Union[Config, Dict[str, Any]], source: str = "config") -> Dict[str, Any]:
    settings: Dict[str, Any] = {
        "model": read_section(config, "model", MODEL_DEFAULTS, source),
        "corpus": read_section(config, "corpus", CORPUS_DEFAULTS, source),
        "training": read_section(config, "training", TRAINING_DEFAULTS, source),
        "seed": settings_seed(config),
    }
    check_loop_settings(settings, source)
    if settings["training"]["optimizer"] not in OPTIMIZERS:
        raise ValueError(
            f"{source}: [training] optimizer must be one of {', '.join(OPTIMIZERS)}, "
            f"got {settings['training']['optimizer']!r}"
        )
    settings["model"]["cutoffs"] = list(settings["model"]["cutoffs"] or [])
    return settings


def _build(settings: Dict[str, Any], train_files) -> BiWordLM:
    corpus = settings["corpus"]
    vocab = WordVocab.from_lines(
        read_lines(train_files), corpus["min_count"], corpus["max_vocab"] or None
    )
    return BiWordLM(vocab, **settings["model"])


def _describe(model: BiWordLM, settings: Dict[str, Any]) -> str:
    sizes = model.sizes
    softmax = (
        f"adaptive softmax, cutoffs {sizes['cutoffs']}" if sizes["cutoffs"] else "full softmax"
    )
    return (
        f"{len(model.vocab):,} words (<unk> and </s> included); LSTM {sizes['hidden_size']} "
        f"-> projection {sizes['projection_size']} x {sizes['num_layers']}; {softmax}; "
        f"{sum(p.numel() for p in model.parameters()):,} parameters"
    )


def _optimizer(params, training: Dict[str, Any]) -> torch.optim.Optimizer:
    return OPTIMIZERS[training["optimizer"]](params, lr=training["learn_rate"])


WORD_LM_TASK = LMTask(
    metric="ppl",
    unit="tokens",
    from_nats=lambda nats: math.exp(min(nats, 700.0)),
    combine=lambda forward, backward: math.sqrt(forward * backward),  # exp of the mean nats
    best_file=BEST,
    last_file=LAST,
    dev_budget="dev_max_tokens",
    read_splits=read_token_chunks,
    build_model=_build,
    model_from_meta=BiWordLM.from_meta,
    encode=lambda model, tokens: model.vocab.encode(tokens),
    make_optimizer=_optimizer,
    describe=_describe,
)


def pretrain_word_lm(
    config: Union[Config, Dict[str, Any]],
    output_dir: Union[str, Path],
    *,
    resume: bool = False,
    gpu_id: int = -1,
    show_progress: bool = True,
) -> Dict[str, Any]:
    """Train (or, with resume, go on training) the forward and backward word LMs of
    config in output_dir: word_lm.msgpack (best dev perplexity, or the last model without
    dev text), word_lm-last.msgpack, checkpoint.msgpack (everything a resume needs) and
    log.jsonl. Returns the final record of the log."""
    return pretrain_lms(
        WORD_LM_TASK,
        read_settings(config),
        output_dir,
        resume=resume,
        gpu_id=gpu_id,
        show_progress=show_progress,
    )
