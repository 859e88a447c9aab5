"""configs/psa_{ner,chunk,pos}.cfg pass `spacy debug config`, initialize and train, the
BiLSTM-CRF baseline is psa_ner.cfg with both fusion layers switched off, and `spacy
train` runs it in a fresh process (entry points only)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.cli.debug_config import debug_config
from spacy.training.initialize import init_nlp
from spacy.util import load_config, resolve_dot_names

from .util import chunk_examples, convert_ner_sample, ner_examples, tag_examples, write_task_corpora

ROOT = Path(__file__).parents[1]
CONFIGS = ROOT / "configs"

TASKS = {
    "ner": ("lm_crf_ner", ner_examples),
    "chunk": ("lm_crf_spans", chunk_examples),
    "pos": ("lm_crf_tagger", tag_examples),
}
TINY = {
    "word_embed.width": 8,
    "char_embed.char_dim": 4,
    "char_embed.hidden": 4,
    "encoder.width": 8,
    "fusion.dropout": 0.0,
}
BASELINE = {"fuse_input": False, "fuse_output": False}
ABLATIONS = {
    "all": {},
    "baseline": BASELINE,
    "no-mask": {"fusion.self_disabled_mask": False},
    "no-P-no-G": {"fusion.relative_position": False, "fusion.gaussian": False},
}


def _overrides(component: str, settings: dict, **paths) -> dict:
    prefix = f"components.{component}.model.tok2vec."
    overrides = {prefix + key: value for key, value in {**TINY, **settings}.items()}
    overrides.update({f"paths.{k}": str(v) for k, v in paths.items()})
    return overrides


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("data")
    write_task_corpora(tmp, {task: make_examples for task, (_, make_examples) in TASKS.items()})
    return convert_ner_sample(tmp)


@pytest.mark.parametrize("task", TASKS)
def test_debug_config(task, data):
    path = data / f"{task}.spacy"
    debug_config(
        CONFIGS / f"psa_{task}.cfg", overrides={"paths.train": str(path), "paths.dev": str(path)}
    )


@pytest.mark.parametrize(
    "task,ablation",
    [(task, "all") for task in TASKS] + [("ner", name) for name in ABLATIONS if name != "all"],
)
@pytest.mark.slow
def test_psa_config_initializes_and_trains(task, ablation, data):
    component, _ = TASKS[task]
    path = data / f"{task}.spacy"
    config = load_config(
        CONFIGS / f"psa_{task}.cfg",
        overrides=_overrides(component, ABLATIONS[ablation], train=path, dev=path),
    )
    nlp = init_nlp(config)
    module = nlp.get_pipe(component).model.get_ref("tok2vec").get_ref("encoder").shims[0]._model
    assert (module.input_fusion is None) == (ablation == "baseline")
    optimizer, train_corpus = resolve_dot_names(
        nlp.config.interpolate(), ["training.optimizer", "corpora.train"]
    )
    examples = list(train_corpus(nlp))
    first = nlp.update(examples, sgd=optimizer)[component]
    for _ in range(4):
        last = nlp.update(examples, sgd=optimizer)[component]
    assert 0 < last < first


@pytest.mark.slow
def test_psa_baseline_trains_with_spacy_cli(tmp_path, data):
    cli = [
        f"--{key}={json.dumps(value)}" for key, value in _overrides("lm_crf_ner", BASELINE).items()
    ]
    out = tmp_path / "out"
    train = subprocess.run(
        [
            sys.executable,
            "-m",
            "spacy",
            "train",
            str(CONFIGS / "psa_ner.cfg"),
            "--output",
            str(out),
            "--paths.train",
            str(data / "sample_train.spacy"),
            "--paths.dev",
            str(data / "sample_dev.spacy"),
            "--training.max_steps",
            "4",
            "--training.eval_frequency",
            "2",
            *cli,
        ],
        capture_output=True,
        text=True,
    )
    assert train.returncode == 0, train.stdout + train.stderr
    nlp = spacy.load(out / "model-best")
    assert len(nlp("Peter Blackburn lives in Berlin .")) == 6
