"""`spacy lmcrf ...`: every command of spacy-lmcrf, in spaCy's CLI (entry point group
spacy_cli), grouped in `spacy lmcrf --help` as:

    training     init-config, debug-data, train, pretrain-char-lm, pretrain-word-lm,
                 hold-out-text
    CoNLL data   convert, split-dev, slice, sample, count
    evaluation   evaluate, conlleval
    pipelines    annotate, package, extract

python -m spacy lmcrf train configs/lmcrf_ner.cfg --output training \\
    --paths.train TRAIN --paths.dev DEV
python -m spacy lmcrf pretrain-char-lm configs/charlm_en.cfg training/charlm_en \\
    --paths.train TEXT --paths.dev TEXT
python -m spacy lmcrf convert eng.train.gz train.spacy --task ner --scheme IOB1
python -m spacy lmcrf evaluate training/model-best dev.spacy --output metrics.json \\
    --conll-output preds.txt --displacy-path displacy

The older module command lines run the same functions (run_as_program): `python -m
spacy_lmcrf.conll` (convert, or split-dev/slice/sample/count as its first argument),
`python -m spacy_lmcrf.evaluate`, `python -m spacy_lmcrf.conlleval` and `python -m
spacy_lmcrf.extract`.

A problem with the inputs (a missing file, a directory that is not a pipeline, a config
that does not parse, bad settings) ends a command with one line on stderr, "Error: ...",
and exit status 1 (exit_on_error); config validation errors are spaCy's
show_validation_error's.

A command defined in another module joins with one line in the block at the end of this
file, e.g. `lmcrf_cli.command("package")(package_cli)`.
"""

import logging
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Type

import typer
from spacy import util
from spacy.cli._util import Arg, Opt, app, parse_config_overrides, show_validation_error
from typer.core import TyperGroup

from .annotate import annotate_cli
from .debug_data import CONTEXT_SETTINGS, debug_data_cli
from .init_config import init_config_cli
from .packaging import package_cli

lmcrf_cli = typer.Typer(
    name="lmcrf",
    help=(
        "spacy-lmcrf commands.\n\n\b\n"
        "training:    init-config, debug-data, train, pretrain-char-lm, pretrain-word-lm,\n"
        "             hold-out-text\n"
        "CoNLL data:  convert, split-dev, slice, sample, count\n"
        "evaluation:  evaluate, conlleval\n"
        "pipelines:   annotate, package, extract"
    ),
    no_args_is_help=True,
    rich_markup_mode=None,  # plain help, as spaCy's own commands print it
)
app.add_typer(lmcrf_cli)

EXTRA_ARGS = {"allow_extra_args": True, "ignore_unknown_options": True}


@contextmanager
def exit_on_error(*errors: Type[Exception]) -> Iterator[None]:
    """Inside the context, an exception of one of the types `errors` ends the command
    with its message on one line of stderr ("Error: ...") and exit status 1, no traceback.

    errors (Type[Exception]): the expected failures (bad inputs), e.g. OSError, ValueError.
    """
    try:
        yield
    except errors as err:
        print(f"Error: {err}", file=sys.stderr)
        raise typer.Exit(1) from None


def check_input(path: Path, what: str) -> None:
    """Raise an OSError that names `what` and the path unless path is a readable file.

    path (Path): the input file.
    what (str): what it is, for the message ("CoNLL file", "config file").
    """
    if not path.exists():
        raise FileNotFoundError(f"{what} not found: {path}")
    if not path.is_file():
        raise FileNotFoundError(f"{what} is not a file: {path}")
    if not os.access(path, os.R_OK):
        raise PermissionError(f"{what} cannot be read (permission denied): {path}")


def run_as_program(name: str, argv: Sequence[str], prog_name: str) -> int:
    """Run the command `spacy lmcrf NAME` as a program of its own (`python -m
    spacy_lmcrf.X`): the same click command, options and checks.

    name (str): the command's name (e.g. "convert").
    argv (Sequence[str]): its command line arguments.
    prog_name (str): the program's name in usage and help.
    RETURNS (int): the exit status.
    """
    group = typer.main.get_command(lmcrf_cli)
    assert isinstance(group, TyperGroup)
    try:
        group.commands[name].main(args=list(argv), prog_name=prog_name)
    except SystemExit as exit_:  # click's standalone mode always exits
        return exit_.code if isinstance(exit_.code, int) else int(exit_.code is not None)
    return 0


# training


@lmcrf_cli.command("train", context_settings=EXTRA_ARGS)
def train_cli(
    ctx: typer.Context,
    config_path: Path = Arg(..., help="Path to config file", allow_dash=False),
    output_path: Optional[Path] = Opt(
        None, "--output", "--output-path", "-o", help="Output directory for the trained pipeline"
    ),
    verbose: bool = Opt(False, "--verbose", "-V", "-VV", help="Show more for debugging"),
    use_gpu: int = Opt(-1, "--gpu-id", "-g", help="GPU ID or -1 for CPU"),
    checkpoint_minutes: float = Opt(
        0.0, "--checkpoint-minutes", help="Write OUTPUT/checkpoint every N minutes (0: never)"
    ),
    checkpoint_steps: int = Opt(
        0, "--checkpoint-steps", help="Write OUTPUT/checkpoint every N steps (0: never)"
    ),
    resume: bool = Opt(False, "--resume", help="Go on from OUTPUT/checkpoint"),
):
    """Train a pipeline like `spacy train`, saving atomically; checkpoints and resume.

    The same config, overrides and output directory as `spacy train`, but model-best and
    model-last are written atomically: a process killed while saving leaves a complete
    pipeline, the previous one or the new one, never a half-written one. With
    --checkpoint-minutes and/or --checkpoint-steps, OUTPUT/checkpoint holds all a run needs
    to go on (weights, optimizer, schedules, step, scores, random states, position in the
    batches), written atomically and again when training ends; --resume goes on from it
    with the same config and overrides (it may change only max_steps, max_epochs, patience,
    eval_frequency, the logger, before_to_disk and gpu_allocator). No --code: this
    package's functions load through entry points. A missing or unreadable file (the
    config, a corpus), or a checkpoint that cannot be resumed, ends it with a one-line
    error."""
    from .training.checkpoint import ResumeError
    from .training.train import train_pipeline

    if verbose:
        util.logger.setLevel(logging.DEBUG)
    overrides = parse_config_overrides(ctx.args)
    with exit_on_error(OSError, ResumeError):
        check_input(config_path, "config file")
        train_pipeline(
            config_path,
            output_path,
            overrides=overrides,
            use_gpu=use_gpu,
            checkpoint_minutes=checkpoint_minutes,
            checkpoint_steps=checkpoint_steps,
            resume=resume,
        )


@lmcrf_cli.command("pretrain-char-lm", context_settings=EXTRA_ARGS)
def pretrain_char_lm_cli(
    ctx: typer.Context,
    config_path: Path = Arg(..., help="Pretraining config file", allow_dash=False),
    output_dir: Path = Arg(..., help="Directory for the LM file, checkpoints and log"),
    resume: bool = Opt(False, "--resume", "-R", help="Go on from output_dir's checkpoint"),
    gpu_id: int = Opt(
        -1, "--gpu-id", "-g", help="GPU ID or -1 for CPU (under torchrun: any ID, cuda:LOCAL_RANK)"
    ),
):
    """Pretrain forward and backward character LMs.

    Character language models on raw text (contextual string embeddings, Akbik et al.
    2018). Text files, directories or .gz files, streamed; truncated BPTT; dev bits per
    character; checkpoints; resume. Config overrides as in `spacy train`, e.g.
    --paths.train corpus.txt.gz --training.max_minutes 30. The result,
    OUTPUT_DIR/char_lm.msgpack, is what spacy_lmcrf.ContextualStringEmbeddings.v1's
    lm_path names. Checkpoints are written at evaluations, every [training]
    checkpoint_minutes, and on Ctrl-C or SIGTERM, which end the run after the current
    step (exit status 130 / 143; a second one aborts). Under torchrun
    (python -m torch.distributed.run --nproc_per_node N -m spacy lmcrf pretrain-char-lm
    ...) N processes share every batch of batch_size rows (gloo on CPU; with --gpu-id,
    NCCL and one GPU per process); rank 0 writes the files."""
    from .pretrain.char_lm_training import pretrain_char_lm, read_settings

    record = _pretrain(
        ctx, config_path, read_settings, pretrain_char_lm, output_dir, resume, gpu_id
    )
    exit_if_stopped_by_signal(record)


@lmcrf_cli.command("pretrain-word-lm", context_settings=EXTRA_ARGS)
def pretrain_word_lm_cli(
    ctx: typer.Context,
    config_path: Path = Arg(..., help="Pretraining config file", allow_dash=False),
    output_dir: Path = Arg(..., help="Directory for the LM file, checkpoints and log"),
    resume: bool = Opt(False, "--resume", "-R", help="Go on from output_dir's checkpoint"),
    gpu_id: int = Opt(
        -1, "--gpu-id", "-g", help="GPU ID or -1 for CPU (under torchrun: any ID, cuda:LOCAL_RANK)"
    ),
):
    """Pretrain forward and backward word-level LMs.

    Word-level language models on raw text (TagLM, Peters et al. 2017): whitespace
    tokens, an end-of-line token after each line, a vocabulary of the frequent words
    plus <unk>, an LSTM with a projection, full or adaptive softmax. Text files,
    directories or .gz files, streamed; truncated BPTT; dev perplexity; checkpoints;
    resume. Config overrides as in `spacy train`. The result,
    OUTPUT_DIR/word_lm.msgpack, is what spacy_lmcrf.BiLMEmbeddings.v1's lm_path names.
    Checkpoints (evaluations, checkpoint_minutes, Ctrl-C or SIGTERM) and torchrun as in
    pretrain-char-lm."""
    from .pretrain.word_lm_training import pretrain_word_lm, read_settings

    record = _pretrain(
        ctx, config_path, read_settings, pretrain_word_lm, output_dir, resume, gpu_id
    )
    exit_if_stopped_by_signal(record)


def _pretrain(
    ctx: typer.Context,
    config_path: Path,
    read_settings: Callable[..., Dict[str, Any]],
    pretrain: Callable[..., Dict[str, Any]],
    output_dir: Path,
    resume: bool,
    gpu_id: int,
) -> Dict[str, Any]:
    """Load and check a pretraining config (errors name its path), then run `pretrain`;
    bad inputs (missing text, a run already in output_dir, bad settings) end the command
    with a one-line error."""
    from .pretrain.char_lm_training import load_pretraining_config

    overrides = parse_config_overrides(ctx.args)
    with exit_on_error(OSError, ValueError):
        check_input(config_path, "config file")
        with show_validation_error(config_path):
            config = load_pretraining_config(config_path, overrides)
        read_settings(config, str(config_path))
        return pretrain(config, output_dir, resume=resume, gpu_id=gpu_id)


@lmcrf_cli.command("hold-out-text")
def hold_out_text_cli(
    source: Path = Arg(..., help="Text file (or .gz) to split"),
    train_path: Path = Arg(..., help="Where the training text goes"),
    dev_path: Path = Arg(..., help="Where the held-out text goes"),
    last: int = Opt(..., "--last", help="Number of lines held out at the end of the text"),
):
    """Split raw text into training and held-out lines.

    The held-out text is the last lines, for LM pretraining on a corpus that comes
    as one file."""
    from .pretrain.text import hold_out_last_lines

    with exit_on_error(OSError, ValueError):
        check_input(source, "text file")
        n_train, n_dev = hold_out_last_lines(source, train_path, dev_path, last)
    print(f"{n_train} lines -> {train_path}; {n_dev} lines -> {dev_path}")


def exit_if_stopped_by_signal(record: Dict[str, Any]) -> None:
    """A pretraining run that SIGINT or SIGTERM stopped (its checkpoint written) exits
    with 128 + the signal's number, as a shell reports a process the signal ended, so
    that `pretrain && train` does not go on with an unfinished LM."""
    if record.get("signal"):
        raise SystemExit(128 + signal.Signals[record["signal"]].value)


# CoNLL data


@lmcrf_cli.command("convert")
def convert_cli(
    input_path: Path = Arg(..., help="CoNLL file (plain or .gz)"),
    output_path: Path = Arg(..., help=".spacy file to write"),
    task: str = Opt(..., "--task", help="ner, chunk or pos"),
    column: int = Opt(-1, "--column", help="Tag column index"),
    scheme: str = Opt("IOB1", "--scheme", help="Tag scheme: IOB1, IOB2, BIOES or BILUO"),
    spans_key: str = Opt("chunks", "--spans-key", help="doc.spans key of the chunks"),
    expect_sentences: Optional[int] = Opt(None, "--expect-sentences"),
    expect_tokens: Optional[int] = Opt(None, "--expect-tokens"),
    store_user_data: bool = Opt(
        False,
        "--store-user-data",
        help="Also store each doc's -DOCSTART- flag and line number (slower)",
    ),
):
    """Convert a CoNLL file to a verified DocBin (.spacy).

    One doc per sentence, -DOCSTART- lines in any form as document delimiters, the
    output read back and checked against the input (counts, words, tags re-encoded from
    the stored spans)."""
    from .conll import convert

    with exit_on_error(OSError, ValueError):
        check_input(input_path, "CoNLL file")
        n_sentences, n_tokens = convert(
            input_path,
            output_path,
            task=task,
            column=column,
            scheme=scheme,
            spans_key=spans_key,
            expect_sentences=expect_sentences,
            expect_tokens=expect_tokens,
            store_user_data=store_user_data,
        )
    print(f"sentences={n_sentences} tokens={n_tokens} -> {output_path}")


@lmcrf_cli.command("split-dev")
def split_dev_cli(
    docs_path: Path = Arg(..., help=".spacy file to split"),
    train_out: Path = Arg(..., help=".spacy file for the rest"),
    dev_out: Path = Arg(..., help=".spacy file for the held-out docs"),
    n_dev: int = Opt(..., "--n-dev", help="Number of docs held out"),
    seed: int = Opt(0, "--seed"),
):
    """Hold out random docs of a DocBin as a dev set.

    Both outputs keep the input's order; the choice depends only on the number of
    docs and the seed."""
    from .conll import split_dev

    with exit_on_error(OSError, ValueError):
        check_input(docs_path, "DocBin")
        n_train, n_dev = split_dev(docs_path, train_out, dev_out, n_dev, seed)
    print(f"train={n_train} -> {train_out} dev={n_dev} -> {dev_out}")


@lmcrf_cli.command("slice")
def slice_cli(
    docs_path: Path = Arg(..., help=".spacy file to take docs from"),
    output_path: Path = Arg(..., help=".spacy file to write"),
    start: int = Opt(..., "--start", help="First doc (from 0)"),
    end: int = Opt(..., "--end", help="Doc after the last one (exclusive)"),
):
    """Write the docs START:END of a DocBin, in order.

    A contiguous split; the range must lie inside the DocBin."""
    from .conll import slice_docs

    with exit_on_error(OSError, ValueError):
        check_input(docs_path, "DocBin")
        n_docs = slice_docs(docs_path, output_path, start, end)
    print(f"docs {start}:{end} ({n_docs}) -> {output_path}")


@lmcrf_cli.command("sample")
def sample_cli(
    docs_path: Path = Arg(..., help=".spacy file to take docs from"),
    output_path: Path = Arg(..., help=".spacy file to write"),
    fraction: float = Opt(..., "--fraction", help="Share of the docs kept, in (0, 1]"),
    seed: int = Opt(0, "--seed"),
):
    """Write a random fraction of a DocBin's docs.

    In their order, at least one; the choice depends only on the number of docs, the
    fraction and the seed (the labeling rate of Yang et al. 2016's Table 8)."""
    from .conll import sample_docs

    with exit_on_error(OSError, ValueError):
        check_input(docs_path, "DocBin")
        n_docs = sample_docs(docs_path, output_path, fraction, seed)
    print(f"{n_docs} docs ({fraction:g}, seed {seed}) -> {output_path}")


@lmcrf_cli.command("count")
def count_cli(
    input_path: Path = Arg(..., help="CoNLL file (plain or .gz)"),
    expect_sentences: Optional[int] = Opt(None, "--expect-sentences"),
    expect_tokens: Optional[int] = Opt(None, "--expect-tokens"),
):
    """Count a CoNLL file's sentences and tokens.

    Exit status 1 unless they are the --expect-* numbers."""
    from .conll import check_counts

    with exit_on_error(OSError, ValueError):
        check_input(input_path, "CoNLL file")
        n_sentences, n_tokens = check_counts(input_path, expect_sentences, expect_tokens)
    print(f"{input_path}: sentences={n_sentences} tokens={n_tokens}")


# evaluation


@lmcrf_cli.command("evaluate")
def evaluate_cli(
    model: Path = Arg(..., help="Pipeline directory or package name"),
    data: Path = Arg(..., help=".spacy file with the gold docs"),
    output: Optional[Path] = Opt(None, "--output", "-o", help="Metrics JSON to write"),
    conll_output: Optional[Path] = Opt(
        None, "--conll-output", help="conlleval file to write (default: none kept)"
    ),
    kind: str = Opt("ner", "--kind", help="What is scored: ner, spans or tags"),
    spans_key: str = Opt("chunks", "--spans-key"),
    scheme: str = Opt("IOB2", "--scheme", help="Tag scheme of the conlleval file"),
    gpu_id: int = Opt(-1, "--gpu-id", "-g", help="GPU ID or -1 for CPU"),
    batch_size: int = Opt(256, "--batch-size"),
    corpus: Optional[str] = Opt(
        None,
        "--corpus",
        help="Tag the docs with this corpus name (a language of a cross-lingual pipeline)",
    ),
    displacy_path: Optional[Path] = Opt(
        None, "--displacy-path", help="Directory for displaCy HTML of the predictions"
    ),
    displacy_limit: int = Opt(25, "--displacy-limit", help="Docs drawn by displaCy"),
):
    """Score a pipeline with conlleval on gold tokens.

    The pipeline runs on the gold tokens of a .spacy corpus: print the report, and write
    the predictions as a conlleval file and the metrics as JSON if asked. spaCy's Scorer scores the
    same predictions; a disagreement exits with status 1. --displacy-path draws the
    predicted entities (--kind ner) or spans (--kind spans) of the first --displacy-
    limit docs."""
    import json
    import tempfile

    from .evaluate import evaluate

    with exit_on_error(OSError, ValueError), tempfile.TemporaryDirectory() as scratch:
        check_input(data, "DocBin")
        result = evaluate(
            model,
            data,
            conll_output or Path(scratch) / "predictions.conll",
            kind=kind,
            spans_key=spans_key,
            scheme=scheme,
            gpu_id=gpu_id,
            batch_size=batch_size,
            corpus=corpus,
            displacy_path=displacy_path,
            displacy_limit=displacy_limit,
        )
        if conll_output is None:
            result["conll_output"] = None
        if output is not None:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf8")
    sys.stdout.write(result["report"])
    if result["displacy_html"] is not None:
        print(f"displaCy HTML of {result['displacy_docs']} docs -> {result['displacy_html']}")
    if not result["spacy_scorer_agrees"]:
        print(
            "Error: spaCy's Scorer disagrees with conlleval: " + "; ".join(result["disagreements"]),
            file=sys.stderr,
        )
        raise typer.Exit(1)


@lmcrf_cli.command("conlleval")
def conlleval_cli(
    path: Path = Arg(..., help="File of 'token gold predicted' lines"),
    scheme: str = Opt(
        "IOB2",
        "--scheme",
        help="Tag scheme of the file: IOB1, IOB2 (read alike), BIOES, BILUO, or 'none': "
        "plain tags such as POS, token accuracy only",
    ),
):
    """Print conlleval's report of a predictions file.

    A file of 'token gold predicted' lines, counted like the CoNLL shared tasks' Perl
    script."""
    from .conlleval import evaluate_file, format_accuracy, format_report
    from .tags import SCHEMES

    tag_scheme = None if scheme == "none" else scheme
    with exit_on_error(OSError, ValueError):
        if scheme not in (*SCHEMES, "none"):
            raise ValueError(
                f"Unknown --scheme {scheme!r}: expected one of {', '.join(SCHEMES)}, none"
            )
        check_input(path, "conlleval file")
        counts = evaluate_file(path, tag_scheme)
    sys.stdout.write(format_report(counts) if tag_scheme else format_accuracy(counts))


# pipelines


@lmcrf_cli.command("extract", context_settings={"allow_extra_args": True})
def extract_cli(
    ctx: typer.Context,
    joint: Path = Arg(..., help="The joint pipeline's directory"),
    output: Path = Arg(..., help="Directory for the new pipeline"),
    keep: List[str] = Opt(..., "--keep", help="The head(s) to keep: --keep NAME [NAME ...]"),
    name: Optional[str] = Opt(None, "--name", help="New name of the kept head"),
    lang: Optional[str] = Opt(None, "--lang", help="Language of the new pipeline"),
):
    """Extract single-language heads from a joint pipeline.

    A single-language (or single-task) pipeline out of a joint one: the components
    named by --keep and every tok2vec they listen to, with their trained weights, in a
    blank pipeline of --lang (default: the joint pipeline's), the kept head renamed to
    --name if given."""
    from .evaluate import load_pipeline
    from .extract import extract

    with exit_on_error(OSError, ValueError):
        nlp = extract(load_pipeline(joint), [*keep, *ctx.args], lang=lang, name=name)
        nlp.to_disk(output)
    print(f"{', '.join(nlp.pipe_names)} -> {output}")


# Commands defined in other modules join here, one line each after their import:
# lmcrf_cli.command(NAME)(FUNCTION).
lmcrf_cli.command("init-config")(init_config_cli)
lmcrf_cli.command("debug-data", context_settings=CONTEXT_SETTINGS)(debug_data_cli)
lmcrf_cli.command("annotate")(annotate_cli)
lmcrf_cli.command("package")(package_cli)
