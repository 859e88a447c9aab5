"""`spacy lmcrf ...`: our commands in spaCy's CLI (entry point group spacy_cli).

python -m spacy lmcrf train configs/lmcrf_ner.cfg --output training \\
    --paths.train TRAIN --paths.dev DEV
python -m spacy lmcrf pretrain-char-lm configs/charlm_en.cfg training/charlm_en \\
    --paths.train TEXT --paths.dev TEXT
python -m spacy lmcrf pretrain-word-lm configs/wordlm_en.cfg training/wordlm_en \\
    --paths.train TEXT --paths.dev TEXT
"""

import logging
import signal
from pathlib import Path
from typing import Any, Dict, Optional

import typer
from spacy import util
from spacy.cli._util import Arg, Opt, app, parse_config_overrides, show_validation_error

lmcrf_cli = typer.Typer(
    name="lmcrf",
    help=(
        "spacy-lmcrf commands: training with atomic saves, language-model pretraining and its text"
    ),
    no_args_is_help=True,
)
app.add_typer(lmcrf_cli)


@lmcrf_cli.command(
    "train", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def train_cli(
    ctx: typer.Context,
    config_path: Path = Arg(..., help="Path to config file", exists=True, allow_dash=False),
    output_path: Optional[Path] = Opt(
        None, "--output", "--output-path", "-o", help="Output directory for the trained pipeline"
    ),
    verbose: bool = Opt(False, "--verbose", "-V", "-VV", help="Show more for debugging"),
    use_gpu: int = Opt(-1, "--gpu-id", "-g", help="GPU ID or -1 for CPU"),
):
    """Train a pipeline as `spacy train` does (same config, overrides and output
    directory), but write model-best and model-last atomically: a process killed while
    saving leaves a complete pipeline, the previous one or the new one, never a
    half-written one. No --code: this package's functions load through entry points."""
    from .training.train import train_pipeline

    if verbose:
        util.logger.setLevel(logging.DEBUG)
    overrides = parse_config_overrides(ctx.args)
    train_pipeline(config_path, output_path, overrides=overrides, use_gpu=use_gpu)


@lmcrf_cli.command(
    "pretrain-char-lm", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def pretrain_char_lm_cli(
    ctx: typer.Context,
    config_path: Path = Arg(..., help="Pretraining config file", exists=True, allow_dash=False),
    output_dir: Path = Arg(..., help="Directory for the LM file, checkpoints and log"),
    resume: bool = Opt(False, "--resume", "-R", help="Go on from output_dir's checkpoint"),
    gpu_id: int = Opt(-1, "--gpu-id", "-g", help="GPU ID or -1 for CPU"),
):
    """Pretrain forward and backward character language models on raw text
    (contextual string embeddings, Akbik et al. 2018). Text files, directories or
    .gz files, streamed; truncated BPTT; dev bits per character; checkpoints; resume.
    Config overrides as in `spacy train`, e.g. --paths.train corpus.txt.gz
    --training.max_minutes 30. The result, OUTPUT_DIR/char_lm.msgpack, is what
    spacy_lmcrf.ContextualStringEmbeddings.v1's lm_path names. Checkpoints are written
    at evaluations, every [training] checkpoint_minutes, and on Ctrl-C or SIGTERM, which
    end the run after the current step (exit status 130 / 143; a second one aborts)."""
    from .pretrain.char_lm_training import load_pretraining_config, pretrain_char_lm

    overrides = parse_config_overrides(ctx.args)
    with show_validation_error(config_path):
        config = load_pretraining_config(config_path, overrides)
    record = pretrain_char_lm(config, output_dir, resume=resume, gpu_id=gpu_id)
    exit_if_stopped_by_signal(record)


@lmcrf_cli.command(
    "pretrain-word-lm", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
def pretrain_word_lm_cli(
    ctx: typer.Context,
    config_path: Path = Arg(..., help="Pretraining config file", exists=True, allow_dash=False),
    output_dir: Path = Arg(..., help="Directory for the LM file, checkpoints and log"),
    resume: bool = Opt(False, "--resume", "-R", help="Go on from output_dir's checkpoint"),
    gpu_id: int = Opt(-1, "--gpu-id", "-g", help="GPU ID or -1 for CPU"),
):
    """Pretrain forward and backward word-level language models on raw text (TagLM,
    Peters et al. 2017): whitespace tokens, an end-of-line token after each line, a
    vocabulary of the frequent words plus <unk>, an LSTM with a projection, full or
    adaptive softmax. Text files, directories or .gz files, streamed; truncated BPTT;
    dev perplexity; checkpoints; resume. Config overrides as in `spacy train`. The
    result, OUTPUT_DIR/word_lm.msgpack, is what spacy_lmcrf.BiLMEmbeddings.v1's
    lm_path names. Checkpoints as in pretrain-char-lm (evaluations, checkpoint_minutes,
    Ctrl-C or SIGTERM)."""
    from .pretrain.char_lm_training import load_pretraining_config
    from .pretrain.word_lm_training import pretrain_word_lm

    overrides = parse_config_overrides(ctx.args)
    with show_validation_error(config_path):
        config = load_pretraining_config(config_path, overrides)
    record = pretrain_word_lm(config, output_dir, resume=resume, gpu_id=gpu_id)
    exit_if_stopped_by_signal(record)


@lmcrf_cli.command("hold-out-text")
def hold_out_text_cli(
    source: Path = Arg(..., help="Text file (or .gz) to split", exists=True),
    train_path: Path = Arg(..., help="Where the training text goes"),
    dev_path: Path = Arg(..., help="Where the held-out text goes"),
    last: int = Opt(..., "--last", help="Number of lines held out at the end of the text"),
):
    """Split raw text into training and held-out text (its last lines), for LM
    pretraining on a corpus that comes as one file."""
    from .pretrain.text import hold_out_last_lines

    n_train, n_dev = hold_out_last_lines(source, train_path, dev_path, last)
    print(f"{n_train} lines -> {train_path}; {n_dev} lines -> {dev_path}")


def exit_if_stopped_by_signal(record: Dict[str, Any]) -> None:
    """A pretraining run that SIGINT or SIGTERM stopped (its checkpoint written) exits
    with 128 + the signal's number, as a shell reports a process the signal ended, so
    that `pretrain && train` does not go on with an unfinished LM."""
    if record.get("signal"):
        raise SystemExit(128 + signal.Signals[record["signal"]].value)
