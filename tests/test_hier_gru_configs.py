"""The hierarchical GRU-CRF configs (Yang et al. 2016), single-task and joint, pass
`spacy debug config`, initialize and train; the joint ones through `spacy train` too."""

import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.cli.debug_config import debug_config
from spacy.training.initialize import init_nlp
from spacy.util import load_config, resolve_dot_names

from spacy_lmcrf.training.corpus import create_task_batcher, create_task_corpora

from .util import chunk_examples, ner_examples, tag_examples, write_task_corpora

ROOT = Path(__file__).parents[1]
CONFIGS = ROOT / "configs"
TINY_PARTS = {
    "encoder.width": 8,
    "encoder.depth": 1,
    "char_embed.char_dim": 4,
    "char_embed.hidden": 4,
}
SINGLE = {
    "ner": ("lm_crf_ner", "ner"),
    "ner_es": ("lm_crf_ner", "ner"),
    "chunk": ("lm_crf_spans", "chunk"),
    "pos": ("lm_crf_tagger", "pos"),
}
JOINT = {
    "yang_multitask_en": ["pos", "chunk", "ner"],
    "yang_joint_ner_pos": ["pos", "ner"],
    "yang_joint_chunk_ner": ["chunk", "ner"],
}
HEAD_OF = {"pos": "lm_crf_tagger", "chunk": "lm_crf_spans", "ner": "lm_crf_ner"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_task_corpora(
        tmp_path_factory.mktemp("data"),
        {"ner": ner_examples, "pos": tag_examples, "chunk": chunk_examples},
    )


def _single_overrides(name, data):
    component, task = SINGLE[name]
    prefix = f"components.{component}.model.tok2vec."
    overrides = {prefix + k: v for k, v in TINY_PARTS.items()}
    overrides[prefix + "word_embed.width"] = 8
    overrides.update(
        {"paths.train": str(data / f"{task}.spacy"), "paths.dev": str(data / f"{task}.spacy")}
    )
    return overrides


def _joint_overrides(name, data):
    overrides = {f"components.tok2vec.model.{k}": v for k, v in TINY_PARTS.items()}
    overrides["components.tok2vec.model.word_embed.width"] = 8
    for task in JOINT[name]:
        overrides[f"paths.{task}_train"] = str(data / f"{task}.spacy")
        overrides[f"paths.{task}_dev"] = str(data / f"{task}.spacy")
    return overrides


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SINGLE))
def test_single_task_config_is_valid_initializes_and_trains(name, data):
    path = CONFIGS / f"hier_gru_{name}.cfg"
    overrides = _single_overrides(name, data)
    debug_config(path, overrides=overrides)
    config = load_config(path, overrides=overrides)
    assert config["components"][SINGLE[name][0]]["margin_cost"] == 5.0
    nlp = init_nlp(config)
    optimizer, train_corpus = resolve_dot_names(
        nlp.config.interpolate(), ["training.optimizer", "corpora.train"]
    )
    assert type(optimizer).__name__ == "Adagrad"
    examples = list(train_corpus(nlp))
    component = SINGLE[name][0]
    first = nlp.update(examples, sgd=optimizer)[component]
    for _ in range(4):
        last = nlp.update(examples, sgd=optimizer)[component]
    assert 0 < last < first


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(JOINT))
def test_joint_config_is_valid_and_alternates_tasks(name, data):
    path = CONFIGS / f"{name}.cfg"
    overrides = _joint_overrides(name, data)
    debug_config(path, overrides=overrides)
    nlp = init_nlp(load_config(path, overrides=overrides))
    train_corpus, batcher = resolve_dot_names(
        nlp.config.interpolate(), ["corpora.train", "training.batcher"]
    )
    examples = list(train_corpus(nlp))
    batches = list(batcher(examples))
    tasks = JOINT[name]
    # one task per batch, the tasks taking turns
    batch_tasks = [{eg.reference.user_data["lmcrf_corpus"] for eg in batch} for batch in batches]
    assert all(len(t) == 1 for t in batch_tasks)
    order = [t.pop() for t in batch_tasks]
    assert order[: len(tasks)] == sorted(order[: len(tasks)], key=tasks.index) and set(
        order[: len(tasks)]
    ) == set(tasks)
    for head in (HEAD_OF[t] for t in tasks):
        assert nlp.get_pipe(head).labels


@pytest.mark.slow
def test_joint_config_trains_with_spacy_cli(tmp_path, data):
    name = "yang_joint_ner_pos"
    out = tmp_path / "out"
    cli = [f"--{k}={v}" for k, v in _joint_overrides(name, data).items()]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "spacy",
            "train",
            str(CONFIGS / f"{name}.cfg"),
            "--output",
            str(out),
            "--training.max_steps",
            "6",
            "--training.eval_frequency",
            "3",
            *cli,
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    nlp = spacy.load(out / "model-best")
    doc = nlp("Peter Blackburn lives in Berlin .")
    assert len(doc) == 6 and all(t.tag_ for t in doc)


def test_task_batcher_cycles_smaller_corpora_and_needs_corpus_names(data):
    nlp = spacy.blank("en")
    read = create_task_corpora(
        {"ner": data / "ner.spacy", "pos": data / "pos.spacy", "chunk": None}
    )
    examples = list(read(nlp))
    assert [eg.reference.user_data["lmcrf_corpus"] for eg in examples[:2]] == ["ner", "pos"]
    assert len(examples) == 4 + 3  # four NER docs, three POS docs, no chunk docs
    batches = list(create_task_batcher(size=1)(examples))
    assert len(batches) == 2 * 4  # four turns: POS starts over after its three
    batches = list(create_task_batcher(size=1, cycle=False)(examples))
    assert len(batches) == 7
    with pytest.raises(ValueError, match="lmcrf_corpus"):
        list(create_task_batcher(size=2)(ner_examples(nlp)))
    with pytest.raises(ValueError, match="every path is null"):
        create_task_corpora({"ner": None})
