"""`spacy lmcrf ...`: every command is listed and runs; bad inputs end a command with one
line on stderr and exit status 1, no traceback; the `python -m spacy_lmcrf.X` programs
run the same commands."""

import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.cli._util import app
from spacy.tokens import DocBin
from typer.testing import CliRunner, Result

import spacy_lmcrf.cli  # noqa: F401 (adds `lmcrf` to spaCy's app, as the entry point does)
from spacy_lmcrf.extract import main as extract_main

from ..util import ROOT, make_nlp, ner_examples

COMMANDS = [
    "train",
    "pretrain-char-lm",
    "pretrain-word-lm",
    "hold-out-text",
    "convert",
    "split-dev",
    "slice",
    "sample",
    "count",
    "evaluate",
    "conlleval",
    "extract",
    "init-config",
    "debug-data",
    "annotate",
    "package",
]
CONLL = "EU B-ORG\nrejects O\n\nPeter B-PER\nBlackburn I-PER\n"


def run(*args: str) -> Result:
    """`spacy lmcrf ARGS`, in this process."""
    return CliRunner().invoke(app, ["lmcrf", *(str(arg) for arg in args)])


def assert_one_line_error(result: Result, *expected: str) -> None:
    """Exit status 1, and stderr one line "Error: ..." holding every expected string."""
    assert result.exit_code == 1, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert all(text in lines[0] for text in expected), lines[0]
    assert "Traceback" not in result.output


@pytest.fixture
def conll_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.iob"
    path.write_text(CONLL, encoding="utf8")
    return path


@pytest.fixture
def docbin(tmp_path: Path) -> Path:
    nlp = spacy.blank("en")
    path = tmp_path / "gold.spacy"
    DocBin(docs=[eg.reference for eg in ner_examples(nlp)]).to_disk(path)
    return path


def test_help_lists_every_command():
    result = run("--help")
    assert result.exit_code == 0
    listed = result.output.split("Commands:")[1]
    assert [line.split()[0] for line in listed.strip().splitlines()] == COMMANDS
    for name in COMMANDS:
        assert name in result.output.split("Options:")[0]  # the groups in the help text


def test_convert_count_and_their_checks(tmp_path, conll_file):
    out = tmp_path / "out.spacy"
    result = run("convert", conll_file, out, "--task", "ner", "--scheme", "IOB2")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"sentences=2 tokens=4 -> {out}"
    assert len(DocBin().from_disk(out)) == 2
    result = run("count", conll_file, "--expect-sentences", "2", "--expect-tokens", "4")
    assert result.exit_code == 0 and result.stdout.strip() == f"{conll_file}: sentences=2 tokens=4"
    result = run("count", conll_file, "--expect-tokens", "5")
    assert_one_line_error(result, str(conll_file), "expected 5 tokens, found 4")
    assert_one_line_error(run("convert", conll_file, out, "--task", "nerd"), "Unknown task 'nerd'")


def test_split_slice_and_sample(tmp_path, docbin):
    result = run("split-dev", docbin, tmp_path / "t.spacy", tmp_path / "d.spacy", "--n-dev", "1")
    assert result.exit_code == 0 and result.stdout.startswith("train=3 -> ")
    result = run("slice", docbin, tmp_path / "s.spacy", "--start", "1", "--end", "3")
    assert result.exit_code == 0 and result.stdout.strip() == f"docs 1:3 (2) -> {tmp_path}/s.spacy"
    result = run("sample", docbin, tmp_path / "f.spacy", "--fraction", "0.5", "--seed", "1")
    assert result.stdout.strip() == f"2 docs (0.5, seed 1) -> {tmp_path}/f.spacy"
    assert_one_line_error(
        run("slice", docbin, tmp_path / "s.spacy", "--start", "0", "--end", "9"), "0:9 of 4"
    )


@pytest.mark.parametrize(
    "command",
    [["convert", "OUT", "--task", "ner"], ["count"], ["split-dev", "T", "D", "--n-dev", "1"]],
)
def test_a_missing_input_is_a_one_line_error(tmp_path, command):
    missing = tmp_path / "missing.txt"
    result = run(command[0], missing, *command[1:])
    assert_one_line_error(result, "not found", str(missing))


def test_a_directory_for_a_file_is_a_one_line_error(tmp_path):
    assert_one_line_error(run("conlleval", tmp_path), "is not a file", str(tmp_path))


def test_conlleval_scheme_is_checked(tmp_path):
    path = tmp_path / "preds.txt"
    path.write_text("EU B-ORG B-ORG\nsaid O O\n", encoding="utf8")
    result = run("conlleval", path, "--scheme", "none")
    assert result.exit_code == 0 and result.stdout.startswith("processed 2 tokens; accuracy: 100")
    assert_one_line_error(run("conlleval", path, "--scheme", "IOB3"), "Unknown --scheme 'IOB3'")


def test_a_model_that_is_not_a_pipeline_is_a_one_line_error(tmp_path, docbin):
    not_a_pipeline = tmp_path / "model"
    not_a_pipeline.mkdir()
    out = ["--output", tmp_path / "m.json", "--conll-output", tmp_path / "p.txt"]
    result = run("evaluate", not_a_pipeline, docbin, *out)
    assert_one_line_error(result, "not a spaCy pipeline", str(not_a_pipeline))
    result = run("evaluate", tmp_path / "nowhere", docbin, *out)
    assert_one_line_error(result, "nowhere")
    result = run("extract", not_a_pipeline, tmp_path / "out", "--keep", "ner")
    assert_one_line_error(result, "not a spaCy pipeline", str(not_a_pipeline))


def test_evaluate_refuses_displacy_for_tags_before_loading(tmp_path, docbin):
    result = run(
        "evaluate",
        tmp_path / "unread",
        docbin,
        "--output",
        tmp_path / "m.json",
        "--conll-output",
        tmp_path / "p.txt",
        "--kind",
        "tags",
        "--displacy-path",
        tmp_path / "html",
    )
    assert_one_line_error(result, "displaCy has no view of --kind tags")


@pytest.mark.parametrize("command", ["train", "pretrain-char-lm", "pretrain-word-lm"])
def test_config_errors_are_clear(tmp_path, command):
    args = [tmp_path / "out"] if command != "train" else []
    assert_one_line_error(
        run(command, tmp_path / "none.cfg", *args), "config file not found", "none.cfg"
    )
    bad = tmp_path / "bad.cfg"
    bad.write_text("[training]\nmax_steps = 3\n[unclosed\n", encoding="utf8")
    result = run(command, bad, *args)
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "Config validation error" in result.output and "[unclosed" in result.output


def test_pretraining_input_errors_name_the_config_or_the_path(tmp_path):
    config = ROOT / "configs" / "charlm_en.cfg"
    out = tmp_path / "out"
    result = run("pretrain-char-lm", config, out, "--paths.train", tmp_path / "no.txt")
    assert_one_line_error(result, "no such text file or directory", "no.txt")
    result = run("pretrain-char-lm", config, out, "--paths.train", config, "--model.size", "3")
    assert_one_line_error(result, str(config), "unknown setting(s) in [model]: size")


def test_hold_out_text_errors(tmp_path):
    source = tmp_path / "text.txt"
    source.write_text("a\nb\n", encoding="utf8")
    result = run("hold-out-text", source, tmp_path / "t.txt", tmp_path / "d.txt", "--last", "1")
    assert result.exit_code == 0 and result.stdout.startswith("1 lines -> ")
    result = run("hold-out-text", source, tmp_path / "t.txt", tmp_path / "d.txt", "--last", "5")
    assert_one_line_error(result, "cannot hold out 5")


@pytest.fixture(scope="module")
def joint_model(tmp_path_factory) -> Path:
    """A tiny (untrained) NER pipeline: one head with an inline tok2vec."""
    nlp = make_nlp("lm_crf_ner")
    nlp.initialize(lambda: ner_examples(nlp))
    path = tmp_path_factory.mktemp("joint") / "model"
    nlp.to_disk(path)
    return path


@pytest.mark.slow
def test_extract_both_forms(tmp_path, joint_model, capsys):
    result = run("extract", joint_model, tmp_path / "a", "--keep", "lm_crf_ner", "--name", "ner")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"ner -> {tmp_path}/a"
    assert spacy.load(tmp_path / "a").pipe_names == ["ner"]
    # the module's program: the same command, and --keep still takes several names
    args = [str(joint_model), str(tmp_path / "b"), "--keep", "lm_crf_ner", "nope"]
    assert extract_main(args) == 1
    assert "no component ['nope']" in capsys.readouterr().err
    assert extract_main(args[:-1] + ["--lang", "de"]) == 0
    assert spacy.load(tmp_path / "b").lang == "de"


@pytest.mark.slow
def test_spacy_entry_point_runs_the_commands(tmp_path, conll_file):
    """`python -m spacy lmcrf ...` (spaCy's CLI, through the spacy_cli entry point)."""
    command = [sys.executable, "-m", "spacy", "lmcrf"]
    result = subprocess.run(
        command + ["count", str(conll_file), "--expect-sentences", "2"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{conll_file}: sentences=2 tokens=4"
    result = subprocess.run(
        command + ["convert", str(tmp_path / "missing.iob"), str(tmp_path / "o"), "--task", "ner"],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"Error: CoNLL file not found: {tmp_path / 'missing.iob'}" in result.stderr


@pytest.mark.slow
def test_train_with_a_missing_corpus_is_a_one_line_error(tmp_path):
    missing = tmp_path / "nope.spacy"
    config = ROOT / "configs" / "lmcrf_ner.cfg"
    result = run("train", config, "--paths.train", missing, "--paths.dev", missing)
    assert_one_line_error(result, "No such file or directory", str(missing))
