"""configs/flair_*.cfg pass `spacy debug config`, initialize and train with each head of
the paper's Table 3 (by override), and `spacy train` runs one in a fresh process."""

import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.cli.debug_config import debug_config
from spacy.training.initialize import init_nlp
from spacy.util import load_config, resolve_dot_names

from .util import chunk_examples, ner_examples, save_tiny_char_lm, tag_examples, write_task_corpora

ROOT = Path(__file__).parents[1]
CONFIGS = ROOT / "configs"
HIDDEN = 8
TASKS = {
    "ner": ("lm_crf_ner", ner_examples),
    "chunk": ("lm_crf_spans", chunk_examples),
    "pos": ("lm_crf_tagger", tag_examples),
}
HEADS = {
    "bilstm_crf": {},
    "map_crf": {"tok2vec.encoder": None},
    "map": {"tok2vec.encoder": None, "pairwise": "none"},
}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("flair")
    write_task_corpora(tmp, {task: make_examples for task, (_, make_examples) in TASKS.items()})
    save_tiny_char_lm(tmp / "char_lm.msgpack", HIDDEN)
    return tmp


def overrides(task, data, head="bilstm_crf"):
    component = TASKS[task][0]
    model = f"components.{component}.model."
    result = {
        "paths.train": str(data / f"{task}.spacy"),
        "paths.dev": str(data / f"{task}.spacy"),
        "paths.char_lm": str(data / "char_lm.msgpack"),
        model + "tok2vec.tok2vec.*.char_lm.hidden_size": HIDDEN,
        model + "tok2vec.tok2vec.*.words.word_embed.width": 8,
        model + "tok2vec.encoder.width": 8,
        "training.optimizer.learn_rate.steps_per_epoch": 1,
    }
    for key, value in HEADS[head].items():
        if value is None:
            result = {k: v for k, v in result.items() if not k.startswith(model + key)}
        result[model + key] = value
    return result


@pytest.mark.parametrize("task", list(TASKS))
def test_debug_config(task, data):
    debug_config(CONFIGS / f"flair_{task}.cfg", overrides=overrides(task, data))


@pytest.mark.slow
@pytest.mark.parametrize(
    "task,head", [(t, "bilstm_crf") for t in TASKS] + [("ner", "map_crf"), ("ner", "map")]
)
def test_config_initializes_and_trains(task, head, data):
    component = TASKS[task][0]
    config = load_config(CONFIGS / f"flair_{task}.cfg", overrides=overrides(task, data, head))
    nlp = init_nlp(config)
    optimizer, train_corpus = resolve_dot_names(
        nlp.config.interpolate(), ["training.optimizer", "corpora.train"]
    )
    examples = list(train_corpus(nlp))
    first = nlp.update(examples, sgd=optimizer)[component]
    optimizer.step_schedules()  # as spaCy's training loop does after each update
    for _ in range(4):
        last = nlp.update(examples, sgd=optimizer)[component]
        optimizer.step_schedules()
    assert 0 < last < first
    assert optimizer.schedules["learn_rate"].history, (
        "the annealing schedule saw the epochs' losses"
    )


@pytest.mark.slow
def test_flair_ner_trains_with_spacy_cli(tmp_path, data):
    cli = [f"--{key}={value}" for key, value in overrides("ner", data).items()]
    out = tmp_path / "out"
    train = subprocess.run(
        [
            sys.executable,
            "-m",
            "spacy",
            "train",
            str(CONFIGS / "flair_ner.cfg"),
            "--output",
            str(out),
            "--training.max_steps=4",
            "--training.eval_frequency=2",
            *cli,
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    (data / "char_lm.msgpack").rename(tmp_path / "elsewhere.msgpack")
    try:
        nlp = spacy.load(out / "model-best")  # the LMs are in the pipeline, not read from the file
        assert len(nlp("Peter Blackburn lives in Berlin .")) == 6
    finally:
        (tmp_path / "elsewhere.msgpack").rename(data / "char_lm.msgpack")
