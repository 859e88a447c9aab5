"""`spacy lmcrf init-config`: a shipped config with the paper's recipe, fitted to your data.

`spacy init config -p lm_crf_ner` gives spaCy's generic training recipe (Adam, spaCy's
batcher) around our component. The configs shipped with this package carry each paper's
recipe instead; several of their settings count steps of one epoch of the corpus they were
written for (the learning-rate decay per epoch, one evaluation per epoch, the patience).
Given your training data, this command rescales those to your corpus's epoch.

    python -m spacy lmcrf init-config config.cfg --system lmcrf --task ner \\
        --train corpus/train.spacy
"""

import math
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from spacy.cli._util import Arg, Opt
from spacy.tokens import DocBin
from spacy.util import load_config
from spacy.vocab import Vocab
from thinc.api import Config
from wasabi import msg

CONFIG_DIR = Path(__file__).parent / "configs"

# system -> what it is, and what it needs beyond training data
SYSTEMS: Dict[str, Tuple[str, str]] = {
    "lmcrf": ("LM-LSTM-CRF (Liu et al. 2018), co-trained character LM", "word vectors"),
    "bilstm_crf": ("BiLSTM-CRF (Huang et al.) baseline", "word vectors"),
    "lstm_crf": ("LSTM-CRF with character bi-LSTM (Lample et al.)", "word vectors"),
    "lstm_cnn_crf": ("LSTM-CNN-CRF with character CNN (Ma & Hovy)", "word vectors"),
    "hier_gru": ("hierarchical GRU-CRF (Yang et al. 2016), softmax-margin", "word vectors"),
    "psa": ("position-aware self-attention (Wei et al.)", "word vectors"),
    "flair": (
        "contextual string embeddings (Akbik et al. 2018)",
        "word vectors and character LMs from `spacy lmcrf pretrain-char-lm`",
    ),
    "taglm": (
        "TagLM (Peters et al. 2017)",
        "word vectors and word LMs from `spacy lmcrf pretrain-word-lm`",
    ),
}
TASKS = ("ner", "chunk", "pos")
BATCHERS_BY_SEQUENCE = ("spacy.batch_by_sequence.v1", "spacy_lmcrf.batch_by_length.v1")
BATCHERS_BY_WORDS = ("spacy.batch_by_words.v1",)


def available() -> List[Tuple[str, str]]:
    """The (system, task) pairs a shipped config exists for."""
    return [
        (system, task)
        for system in SYSTEMS
        for task in TASKS
        if (CONFIG_DIR / f"{system}_{task}.cfg").exists()
    ]


def shipped_config_path(system: str, task: str) -> Path:
    """The shipped config of system for task; a ValueError lists what exists."""
    path = CONFIG_DIR / f"{system}_{task}.cfg"
    if not path.exists():
        pairs = ", ".join(f"{s}/{t}" for s, t in available())
        raise ValueError(
            f"no shipped config for system {system!r} and task {task!r}; use one of: {pairs}"
        )
    return path


def epoch_steps(config: Config, n_docs: int, n_words: int) -> Optional[int]:
    """How many batches one epoch of n_docs docs (n_words tokens) makes with the config's
    batcher, or None for a batcher this cannot tell."""
    batcher = config["training"]["batcher"]
    size = batcher.get("size")
    if not isinstance(size, int) or size < 1:
        return None
    if batcher.get("@batchers") in BATCHERS_BY_SEQUENCE:
        return max(1, math.ceil(n_docs / size))
    if batcher.get("@batchers") in BATCHERS_BY_WORDS:
        return max(1, math.ceil(n_words / size))
    return None


def fit_to_epoch(config: Config, steps: int) -> Dict[str, int]:
    """Rescale the config's per-epoch step counts (the shipped configs evaluate once per
    epoch of their corpus, so eval_frequency is that epoch) to an epoch of `steps` batches:
    eval_frequency, patience (in epochs unchanged) and the learning-rate schedule's
    steps_per_epoch. Returns what was set."""
    training = config["training"]
    reference = training["eval_frequency"]
    changed = {"training.eval_frequency": steps}
    training["eval_frequency"] = steps
    if training.get("patience"):
        patience = max(1, round(training["patience"] * steps / reference))
        training["patience"] = changed["training.patience"] = patience
    learn_rate = training["optimizer"].get("learn_rate")
    if isinstance(learn_rate, dict) and "steps_per_epoch" in learn_rate:
        learn_rate["steps_per_epoch"] = steps
        changed["training.optimizer.learn_rate.steps_per_epoch"] = steps
    return changed


def count_training_data(path: Path) -> Tuple[int, int, int]:
    """(docs, tokens, docs holding more than one sentence) of a .spacy file."""
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    n_docs = n_words = n_multi = 0
    for doc in DocBin().from_disk(path).get_docs(Vocab()):
        n_docs += 1
        n_words += len(doc)
        if doc.has_annotation("SENT_START") and sum(1 for _ in doc.sents) > 1:
            n_multi += 1
    return n_docs, n_words, n_multi


def header(path: Path) -> str:
    """The comment block at the top of a config file (what it matches of its paper)."""
    lines = []
    for line in path.read_text(encoding="utf8").splitlines():
        if not line.startswith("#"):
            break
        lines.append(line)
    return "\n".join(lines) + "\n" if lines else ""


def init_config_cli(
    output_file: Path = Arg(..., help="Where the config goes ('-' for stdout)", allow_dash=True),
    system: str = Opt("lmcrf", "--system", "-s", help=f"One of {', '.join(SYSTEMS)}"),
    task: str = Opt("ner", "--task", "-t", help="ner, chunk or pos"),
    lang: Optional[str] = Opt(None, "--lang", "-l", help="Language code (the config's: en)"),
    train_path: Optional[Path] = Opt(
        None, "--train", help="Training .spacy file: per-epoch step counts fitted to it"
    ),
):
    """Write a shipped config with its paper's recipe (not spaCy's generic one), with
    the per-epoch step counts fitted to your training data when --train is given."""
    try:
        path = shipped_config_path(system, task)
    except ValueError as error:
        msg.fail(str(error), exits=1)
    config = load_config(path, interpolate=False)
    if lang is not None:
        config["nlp"]["lang"] = lang
    notes = [f"{system}/{task}: {SYSTEMS[system][0]}; needs {SYSTEMS[system][1]}"]
    if train_path is not None:
        try:
            n_docs, n_words, n_multi = count_training_data(train_path)
        except ValueError as error:
            msg.fail(str(error), exits=1)
        if n_multi:
            msg.warn(
                f"{n_multi} of {n_docs} training docs hold more than one sentence: the "
                "batch sizes count docs, as the papers count sentences; convert with one "
                "sentence per doc (spacy lmcrf convert does)"
            )
        steps = epoch_steps(config, n_docs, n_words)
        if steps is None:
            notes.append("the batcher's epoch length is unknown: step counts left as shipped")
        else:
            changed = fit_to_epoch(config, steps)
            notes.append(
                f"one epoch of {train_path} ({n_docs} docs) = {steps} batches: "
                + ", ".join(f"{key} = {value}" for key, value in changed.items())
            )
    text = (
        f"# {path.name}, written by spacy lmcrf init-config; its header:\n#\n"
        + header(path)
        + "\n"
        + config.to_str()
    )
    if str(output_file) == "-":
        print(text)
    else:
        output_file.parent.mkdir(parents=True, exist_ok=True)
        output_file.write_text(text, encoding="utf8")
        msg.good(f"Saved config {output_file}")
    for note in notes:
        msg.info(note)
