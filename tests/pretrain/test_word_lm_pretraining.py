"""Pretraining word-level LMs on raw text (`spacy lmcrf pretrain-word-lm`): tokens and
vocabulary, perplexity falls (full and adaptive softmax), resume continues exactly with
Adam's state, the CLI runs through spaCy's entry point."""

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch
from thinc.api import Config

from spacy_lmcrf.ml.modules.word_lm import BiWordLM
from spacy_lmcrf.ml.modules.word_vocab import EOS, UNK, WordVocab, line_tokens
from spacy_lmcrf.pretrain.text import read_lines, read_token_chunks, text_files
from spacy_lmcrf.pretrain.word_lm_training import pretrain_word_lm

from ..util import ROOT
from .test_char_lm_pretraining import sentences


@pytest.fixture
def text_dir(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "a.txt").write_text("\n".join(sentences(300, 0)) + "\n", encoding="utf8")
    (tmp_path / "dev.txt").write_text("\n".join(sentences(40, 2)) + "\n", encoding="utf8")
    return tmp_path


def tiny_config(train, dev=None, cutoffs=(), **training):
    return Config(
        {
            "system": {"seed": 0},
            "model": {
                "embedding_size": 16,
                "hidden_size": 32,
                "projection_size": 16,
                "num_layers": 1,
                "dropout": 0.0,
                "cutoffs": list(cutoffs),
            },
            "corpus": {
                "train": str(train),
                "dev": str(dev) if dev else None,
                "min_count": 1,
                "max_vocab": 0,
                "dev_max_tokens": 0,
            },
            "training": {
                "optimizer": "adam",
                "learn_rate": 0.01,
                "bptt": 8,
                "batch_size": 4,
                "split_windows": 5,
                "grad_clip": 1.0,
                "eval_every": 20,
                "max_steps": 60,
                **training,
            },
        }
    )


def read_log(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_tokens_chunks_and_vocabulary(text_dir):
    assert line_tokens("the  cat sat\n") == ["the", "cat", "sat", EOS]
    files = text_files(text_dir / "train")
    tokens = [t for line in read_lines(files) for t in line_tokens(line)]
    chunks = list(read_token_chunks(files, 37))
    assert [t for c in chunks for t in c] == tokens
    assert all(len(c) == 37 for c in chunks[:-1])
    counts = Counter({"a": 5, "b": 3, "c": 1, EOS: 2})
    vocab = WordVocab.from_counts(counts, min_count=2)
    assert vocab.words == [EOS, "a", "b"] and len(vocab) == 4
    assert list(vocab.encode(["a", "c", EOS])) == [2, 0, 1]
    assert vocab.decode([0, 3]) == [UNK, "b"]
    assert WordVocab.from_counts(counts, max_vocab=3).words == [EOS, "a"]
    with pytest.raises(ValueError, match="empty"):
        WordVocab.from_counts(Counter())


@pytest.mark.slow
@pytest.mark.parametrize("cutoffs", [(), (8, 16)], ids=["full-softmax", "adaptive-softmax"])
def test_perplexity_falls_and_files_are_written(text_dir, cutoffs):
    out = text_dir / "out"
    final = pretrain_word_lm(
        tiny_config(text_dir / "train", text_dir / "dev.txt", cutoffs), out, show_progress=False
    )
    evals = [r for r in read_log(out / "log.jsonl") if r["event"] == "evaluate"]
    assert [r["step"] for r in evals] == [20, 40, 60]
    assert evals[-1]["dev_ppl"] < 0.5 * evals[0]["dev_ppl"]
    assert evals[-1]["dev_ppl_forward"] < evals[0]["dev_ppl_forward"]
    assert evals[-1]["dev_ppl_backward"] < evals[0]["dev_ppl_backward"]
    assert final["reason"] == "max_steps (60)" and final["dev_tokens"] > 0
    lms = BiWordLM.load(out / "word_lm.msgpack")
    assert lms.output_size == 16 and "Washington" in lms.vocab.words
    assert lms.sizes["cutoffs"] == list(cutoffs)
    assert hasattr(lms.forward_lm, "softmax") == bool(cutoffs)


def test_a_fresh_lm_scores_about_the_vocabulary_size(text_dir):
    out = text_dir / "out"
    record = pretrain_word_lm(
        tiny_config(text_dir / "train", text_dir / "dev.txt", max_steps=1, learn_rate=0.0),
        out,
        show_progress=False,
    )
    n_words = len(BiWordLM.load(out / "word_lm.msgpack").vocab)
    assert 0.7 * n_words < record["dev_ppl"] < 1.3 * n_words


@pytest.mark.slow
def test_resume_continues_exactly_with_the_optimizer_state(text_dir):
    straight, halves = text_dir / "straight", text_dir / "halves"
    config = tiny_config(text_dir / "train", text_dir / "dev.txt", (8,), max_steps=40)
    pretrain_word_lm(config, straight, show_progress=False)
    pretrain_word_lm(
        tiny_config(text_dir / "train", text_dir / "dev.txt", (8,), max_steps=23),
        halves,
        show_progress=False,
    )
    pretrain_word_lm(config, halves, resume=True, show_progress=False)
    a = BiWordLM.load(straight / "word_lm-last.msgpack").state_dict()
    b = BiWordLM.load(halves / "word_lm-last.msgpack").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_bad_settings_are_errors(text_dir):
    with pytest.raises(ValueError, match="optimizer must be one of"):
        pretrain_word_lm(tiny_config(text_dir / "train", optimizer="rmsprop"), text_dir / "out")
    bad = tiny_config(text_dir / "train")
    bad["model"]["projection_size"] = 64
    with pytest.raises(ValueError, match="projection_size must be"):
        pretrain_word_lm(bad, text_dir / "out2", show_progress=False)
    unknown = tiny_config(text_dir / "train")
    unknown["corpus"]["min_freq"] = 2
    with pytest.raises(ValueError, match=r"unknown setting\(s\) in \[corpus\]: min_freq"):
        pretrain_word_lm(unknown, text_dir / "out3")


@pytest.mark.slow
def test_cli_through_spacy_entry_point(text_dir):
    out = text_dir / "cli_out"
    args = [
        sys.executable,
        "-m",
        "spacy",
        "lmcrf",
        "pretrain-word-lm",
        str(ROOT / "configs" / "wordlm_en.cfg"),
        str(out),
        "--paths.train",
        str(text_dir / "train"),
        "--paths.dev",
        str(text_dir / "dev.txt"),
        "--model.hidden_size",
        "16",
        "--model.projection_size",
        "8",
        "--model.embedding_size",
        "8",
        "--model.cutoffs",
        "[10]",
        "--training.batch_size",
        "4",
        "--training.bptt",
        "6",
        "--training.eval_every",
        "3",
    ]
    result = subprocess.run(
        [*args, "--training.max_steps", "6"], capture_output=True, text=True, cwd=text_dir
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert BiWordLM.load(out / "word_lm.msgpack").output_size == 8
    resumed = subprocess.run(
        [*args, "--training.max_steps", "9", "--resume"],
        capture_output=True,
        text=True,
        cwd=text_dir,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert read_log(out / "log.jsonl")[-1]["step"] == 9
