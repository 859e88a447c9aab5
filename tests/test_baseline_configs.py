"""The baseline configs pass `spacy debug config` (the function the CLI runs), initialize
and train, and `spacy train` runs one of them in a fresh process (entry points only)."""

import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.cli.debug_config import debug_config
from spacy.training.initialize import init_nlp
from spacy.util import load_config, resolve_dot_names

from .util import chunk_examples, convert_ner_sample, ner_examples, write_task_corpora

ROOT = Path(__file__).parents[1]
CONFIGS = ROOT / "configs"

# system -> tiny sizes of its parts (keys under components.<component>.model.tok2vec)
TINY = {
    "bilstm_crf": {"encoder.width": 8},
    "lstm_crf": {"encoder.width": 8, "char_embed.char_dim": 4, "char_embed.hidden": 4},
    "lstm_cnn_crf": {"encoder.width": 8, "char_embed.char_dim": 4, "char_embed.filters": 4},
}
TASKS = {"ner": ("lm_crf_ner", ner_examples), "chunk": ("lm_crf_spans", chunk_examples)}
BASELINES = [(system, task) for system in TINY for task in TASKS]


def _tiny_overrides(system: str, component: str, **paths) -> dict:
    prefix = f"components.{component}.model.tok2vec."
    overrides = {prefix + key: value for key, value in TINY[system].items()}
    overrides.update({f"paths.{k}": str(v) for k, v in paths.items()})
    return overrides


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("data")
    write_task_corpora(tmp, {task: make_examples for task, (_, make_examples) in TASKS.items()})
    return convert_ner_sample(tmp)


@pytest.mark.parametrize(
    "name",
    [f"{system}_{task}" for system, task in BASELINES] + ["transformer_crf_ner"],
)
@pytest.mark.slow
def test_debug_config(name, data):
    if name.startswith("transformer"):
        pytest.importorskip("spacy_transformers")
    task = name.rsplit("_", 1)[1]
    path = data / f"{task}.spacy"
    debug_config(
        CONFIGS / f"{name}.cfg", overrides={"paths.train": str(path), "paths.dev": str(path)}
    )


@pytest.mark.slow
@pytest.mark.parametrize("system,task", BASELINES)
def test_baseline_config_initializes_and_trains(system, task, data):
    component, _ = TASKS[task]
    path = data / f"{task}.spacy"
    overrides = _tiny_overrides(system, component, train=path, dev=path)
    config = load_config(CONFIGS / f"{system}_{task}.cfg", overrides=overrides)
    nlp = init_nlp(config)
    optimizer, train_corpus = resolve_dot_names(
        nlp.config.interpolate(), ["training.optimizer", "corpora.train"]
    )
    examples = list(train_corpus(nlp))
    first = nlp.update(examples, sgd=optimizer)[component]
    for _ in range(4):
        last = nlp.update(examples, sgd=optimizer)[component]
    assert 0 < last < first


@pytest.mark.slow
@pytest.mark.parametrize("system", list(TINY))
def test_baseline_config_trains_with_spacy_cli(tmp_path, data, system):
    """`spacy train` on the demo sample, in a fresh process (entry points only)."""
    cli = [f"--{key}={value}" for key, value in _tiny_overrides(system, "lm_crf_ner").items()]
    out = tmp_path / "out"
    train = subprocess.run(
        [
            sys.executable,
            "-m",
            "spacy",
            "train",
            str(CONFIGS / f"{system}_ner.cfg"),
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
