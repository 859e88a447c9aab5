"""`spacy train`, `spacy evaluate` and `spacy init labels` run the shipped configs in a fresh
process that never imports spacy_lmcrf by hand (entry points only, no --code); a trained
pipeline loads without the LM file it was trained with."""

import json
import subprocess
import sys

import pytest
import spacy

from .harness import CONFIGS, cli_args, overrides

PSA_BASELINE = {"{head}.tok2vec.fuse_input": False, "{head}.tok2vec.fuse_output": False}


def _sample(data):
    """The shipped CoNLL-2003 sample, for the NER configs' runs of `spacy train`."""
    return {
        "paths.train": str(data / "sample_train.spacy"),
        "paths.dev": str(data / "sample_dev.spacy"),
    }


def _spacy(*args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "spacy", *map(str, args)], capture_output=True, text=True, **kwargs
    )


@pytest.mark.slow
def test_ner_config_trains_with_spacy_cli(tmp_path, data):
    out = tmp_path / "out"
    settings = {**overrides("lmcrf_ner", data), **_sample(data)}
    train = _spacy(
        "train",
        CONFIGS / "lmcrf_ner.cfg",
        "--output",
        out,
        "--training.max_steps=6",
        "--training.eval_frequency=3",
        *cli_args(settings),
    )
    assert train.returncode == 0, train.stdout + train.stderr
    assert (out / "model-best" / "lm_crf_ner" / "model").exists()
    # the config's [initialize.after_init] (spacy_lmcrf.set_meta.v1) put the license in the meta
    assert json.loads((out / "model-best" / "meta.json").read_text())["license"] == "MIT"
    metrics = tmp_path / "metrics.json"
    evaluate = _spacy(
        "evaluate", out / "model-best", data / "sample_dev.spacy", "--output", metrics
    )
    assert evaluate.returncode == 0, evaluate.stdout + evaluate.stderr
    scores = json.loads(metrics.read_text())
    assert 0.0 <= scores["ents_f"] <= 1.0


@pytest.mark.slow
def test_spacy_init_labels(tmp_path, data):
    settings = {**overrides("lmcrf_ner", data), **_sample(data)}
    result = _spacy("init", "labels", CONFIGS / "lmcrf_ner.cfg", tmp_path, *cli_args(settings))
    assert result.returncode == 0, result.stdout + result.stderr
    labels = json.loads((tmp_path / "lm_crf_ner.json").read_text())
    assert sorted(labels) == ["LOC", "MISC", "ORG", "PER"]


@pytest.mark.slow
@pytest.mark.parametrize(
    "name,extra",
    [
        ("bilstm_crf_ner", {}),
        ("lstm_crf_ner", {}),
        ("lstm_cnn_crf_ner", {}),
        # the BiLSTM-CRF baseline of the PSA paper: psa_ner.cfg with both fusion layers off
        ("psa_ner", PSA_BASELINE),
    ],
    ids=["bilstm_crf", "lstm_crf", "lstm_cnn_crf", "psa_baseline"],
)
def test_config_trains_on_the_sample_with_spacy_cli(tmp_path, data, name, extra):
    """`spacy train` on the demo sample, in a fresh process (entry points only)."""
    out = tmp_path / "out"
    settings = {**overrides(name, data, extra), **_sample(data)}
    train = _spacy(
        "train",
        CONFIGS / f"{name}.cfg",
        "--output",
        out,
        "--training.max_steps=4",
        "--training.eval_frequency=2",
        *cli_args(settings),
    )
    assert train.returncode == 0, train.stdout + train.stderr
    nlp = spacy.load(out / "model-best")
    assert len(nlp("Peter Blackburn lives in Berlin .")) == 6


@pytest.mark.slow
def test_flair_ner_trains_with_spacy_cli(tmp_path, data):
    out = tmp_path / "out"
    train = _spacy(
        "train",
        CONFIGS / "flair_ner.cfg",
        "--output",
        out,
        "--training.max_steps=4",
        "--training.eval_frequency=2",
        *cli_args(overrides("flair_ner", data)),
        cwd=tmp_path,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    (data / "char_lm.msgpack").rename(tmp_path / "elsewhere.msgpack")
    try:
        nlp = spacy.load(out / "model-best")  # the LMs are in the pipeline, not read from the file
        assert len(nlp("Peter Blackburn lives in Berlin .")) == 6
    finally:
        (tmp_path / "elsewhere.msgpack").rename(data / "char_lm.msgpack")


@pytest.mark.slow
def test_joint_config_trains_with_spacy_cli(tmp_path, data):
    out = tmp_path / "out"
    result = _spacy(
        "train",
        CONFIGS / "yang_joint_ner_pos.cfg",
        "--output",
        out,
        "--training.max_steps=6",
        "--training.eval_frequency=3",
        *cli_args(overrides("yang_joint_ner_pos", data)),
    )
    assert result.returncode == 0, result.stdout + result.stderr
    nlp = spacy.load(out / "model-best")
    doc = nlp("Peter Blackburn lives in Berlin .")
    assert len(doc) == 6 and all(t.tag_ for t in doc)


@pytest.mark.slow
def test_taglm_spacy_train_divides_the_rate_and_stops(tmp_path, data):
    out = tmp_path / "out"
    train = _spacy(
        "train",
        CONFIGS / "taglm_ner.cfg",
        "--output",
        out,
        "--training.eval_frequency=1",
        "--training.max_steps=300",
        "--training.max_epochs=0",
        "--training.optimizer.learn_rate.patience=1",
        "--training.optimizer.learn_rate.epochs_per_drop=2",
        *cli_args(overrides("taglm_ner", data)),
        cwd=tmp_path,
    )
    assert train.returncode == 0, train.stderr[-3000:] + train.stdout[-3000:]
    assert train.stdout.count("learning rate 0.0001 for 2 epochs (phase 1 of 2)") == 1
    assert "learning rate 1e-05 for 2 epochs (phase 2 of 2)" in train.stdout
    assert "Stopping: spacy_lmcrf.drop_after_best_dev.v1 has run its 2 phases" in train.stdout
    assert (out / "model-last").exists() and (out / "model-best").exists()
    (data / "word_lm.msgpack").rename(tmp_path / "elsewhere.msgpack")
    try:
        nlp = spacy.load(out / "model-last")  # the LMs are in the pipeline, not read from the file
        assert len(nlp("Peter Blackburn lives in Berlin .")) == 6
    finally:
        (tmp_path / "elsewhere.msgpack").rename(data / "word_lm.msgpack")
