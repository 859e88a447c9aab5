"""The shipped configs resolve, and `spacy train` / `evaluate` / `init labels` run them in a
fresh process that never imports spacy_lmcrf by hand (entry points only, no --code)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training.initialize import init_nlp
from spacy.util import load_config, resolve_dot_names

from .util import chunk_examples, convert_ner_sample, tag_examples

ROOT = Path(__file__).parents[1]
CONFIGS = ROOT / "configs"

TINY = {
    "char_dim": 8,
    "char_hidden": 16,
    "width": 16,
    "min_freq": 1,
}


def _tiny_overrides(component: str, **paths) -> dict:
    prefix = f"components.{component}.model.tok2vec."
    overrides = {prefix + key: value for key, value in TINY.items()}
    overrides.update({f"paths.{k}": str(v) for k, v in paths.items()})
    return overrides


@pytest.fixture(scope="module")
def ner_corpus(tmp_path_factory):
    return convert_ner_sample(tmp_path_factory.mktemp("corpus"), prefix="")


def _write(examples, path):
    DocBin(docs=[eg.reference for eg in examples], store_user_data=False).to_disk(path)


@pytest.mark.parametrize(
    "name,component,make_examples",
    [("lmcrf_chunk", "lm_crf_spans", chunk_examples), ("lmcrf_pos", "lm_crf_tagger", tag_examples)],
)
def test_config_initializes_and_trains(tmp_path, name, component, make_examples):
    nlp = spacy.blank("en")
    _write(make_examples(nlp), tmp_path / "data.spacy")
    path = tmp_path / "data.spacy"
    config = load_config(
        CONFIGS / f"{name}.cfg", overrides=_tiny_overrides(component, train=path, dev=path)
    )
    nlp = init_nlp(config)
    optimizer, train_corpus = resolve_dot_names(
        nlp.config.interpolate(), ["training.optimizer", "corpora.train"]
    )
    examples = list(train_corpus(nlp))
    losses = nlp.update(examples, sgd=optimizer)
    assert losses[component] > 0
    assert f"{component}_lm" in losses


@pytest.mark.slow
def test_ner_config_trains_with_spacy_cli(tmp_path, ner_corpus):
    cli = []
    for key, value in _tiny_overrides("lm_crf_ner").items():
        cli += [f"--{key}", str(value)]
    out = tmp_path / "out"
    train = subprocess.run(
        [
            sys.executable,
            "-m",
            "spacy",
            "train",
            str(CONFIGS / "lmcrf_ner.cfg"),
            "--output",
            str(out),
            "--paths.train",
            str(ner_corpus / "train.spacy"),
            "--paths.dev",
            str(ner_corpus / "dev.spacy"),
            "--training.max_steps",
            "6",
            "--training.eval_frequency",
            "3",
            *cli,
        ],
        capture_output=True,
        text=True,
    )
    assert train.returncode == 0, train.stdout + train.stderr
    assert (out / "model-best" / "lm_crf_ner" / "model").exists()
    # the config's [initialize.after_init] (spacy_lmcrf.set_meta.v1) put the license in the meta
    assert json.loads((out / "model-best" / "meta.json").read_text())["license"] == "MIT"
    metrics = tmp_path / "metrics.json"
    evaluate = subprocess.run(
        [
            sys.executable,
            "-m",
            "spacy",
            "evaluate",
            str(out / "model-best"),
            str(ner_corpus / "dev.spacy"),
            "--output",
            str(metrics),
        ],
        capture_output=True,
        text=True,
    )
    assert evaluate.returncode == 0, evaluate.stdout + evaluate.stderr
    scores = json.loads(metrics.read_text())
    assert 0.0 <= scores["ents_f"] <= 1.0


@pytest.mark.slow
def test_spacy_init_labels(tmp_path, ner_corpus):
    cli = []
    for key, value in _tiny_overrides("lm_crf_ner").items():
        cli += [f"--{key}", str(value)]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "spacy",
            "init",
            "labels",
            str(CONFIGS / "lmcrf_ner.cfg"),
            str(tmp_path),
            "--paths.train",
            str(ner_corpus / "train.spacy"),
            "--paths.dev",
            str(ner_corpus / "dev.spacy"),
            *cli,
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    labels = json.loads((tmp_path / "lm_crf_ner.json").read_text())
    assert sorted(labels) == ["LOC", "MISC", "ORG", "PER"]
