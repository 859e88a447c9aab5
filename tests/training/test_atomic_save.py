"""Atomic pipeline saves (spacy_lmcrf.training.atomic_save) and `spacy lmcrf train`, which uses
them: a process killed at any moment of a save leaves a pipeline that loads (after the recovery
rule: the previous one or the new one, never a broken one), and the command writes
model-best and model-last as `spacy train` does."""

import multiprocessing
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, List, Optional

import numpy
import pytest
import spacy
from spacy.language import Language
from spacy.util import load_config, registry
from spacy.vectors import Vectors

from spacy_lmcrf.training import atomic_save
from spacy_lmcrf.training.atomic_save import (
    copy_directory_atomically,
    load_pipeline,
    old_sibling,
    recover_interrupted_save,
    replace_directory_atomically,
    save_pipeline_atomically,
)
from spacy_lmcrf.training.callbacks import TrainingBudgetSpent
from spacy_lmcrf.training.train import train_pipeline

from ..util import ROOT, convert_ner_sample, make_nlp, ner_examples, train

TEXTS = ["Peter Blackburn lives in Berlin w17 .", "w3 w5 EU rejects German call"]
N_VECTORS = 50000  # 50,000 x 16 floats in the vectors and again in the model: 6 MB
SEED = 21
TINY_LMCRF = {
    "components.lm_crf_ner.model.tok2vec.char_dim": 4,
    "components.lm_crf_ner.model.tok2vec.char_hidden": 8,
    "components.lm_crf_ner.model.tok2vec.width": 8,
    "components.lm_crf_ner.model.tok2vec.word_dim": 8,
    "components.lm_crf_ner.model.tok2vec.min_freq": 1,
    "corpora.train.limit": 10,
    "corpora.dev.limit": 10,
    "training.max_steps": 3,
    "training.eval_frequency": 2,
}


def small_pipeline(seed: int, n_steps: int) -> Language:
    """A blank English pipeline with random vectors (seeded) and an lm_crf_ner trained
    for n_steps on the tiny NER data."""
    nlp = make_nlp("lm_crf_ner")
    data = numpy.random.default_rng(seed).normal(size=(N_VECTORS, 16)).astype("float32")
    keys = [nlp.vocab.strings.add(f"w{index}") for index in range(N_VECTORS)]
    nlp.vocab.vectors = Vectors(strings=nlp.vocab.strings, data=data, keys=keys)
    train(nlp, ner_examples(nlp), n_steps)
    return nlp


def output(nlp: Language) -> list:
    """What a pipeline does with TEXTS: entities, their probabilities, the doc vectors."""
    docs = list(nlp.pipe(TEXTS))
    return [
        (
            [(e.start, e.end, e.label_) for e in doc.ents],
            [round(float(s), 5) for s in doc.spans["lm_crf_ner"].attrs["scores"]],
            [round(float(v), 5) for v in doc.vector],
        )
        for doc in docs
    ]


@pytest.fixture(scope="module")
def pipelines():
    """Two pipelines (A: 1 training step, vectors of seed 1; B: 20 steps, seed 2), that
    differ in what they output."""
    first, second = small_pipeline(1, 1), small_pipeline(2, 20)
    assert output(first) != output(second)
    return first, second


def siblings(path: Path) -> List[str]:
    return sorted(os.listdir(path.parent))


def can_exchange(directory: Path) -> bool:
    """Whether the system and the file system of directory can exchange two directories."""
    a, b = directory / "probe-a", directory / "probe-b"
    a.mkdir()
    b.mkdir()
    try:
        return atomic_save.exchange_directories(a, b)
    finally:
        a.rmdir()
        b.rmdir()


# Recovery and the two ways of swapping, without kills


@pytest.mark.slow
def test_save_replaces_and_leaves_nothing_beside(tmp_path, pipelines):
    target = tmp_path / "model"
    for nlp in (*pipelines, pipelines[0]):
        assert save_pipeline_atomically(nlp, target) == target
        assert siblings(target) == ["model"]
        assert output(spacy.load(target)) == output(nlp)


def test_two_rename_fallback_replaces_too(tmp_path, monkeypatch):
    monkeypatch.setattr(atomic_save, "exchange_directories", lambda a, b: False)
    target = tmp_path / "dir"
    for content in ("one", "two"):
        replace_directory_atomically(
            target, lambda tmp, content=content: write_marker(tmp, content)
        )
        assert (target / "marker").read_text() == content and siblings(target) == ["dir"]


def write_marker(directory: Path, content: str) -> None:
    directory.mkdir(parents=True)
    (directory / "marker").write_text(content)


def test_exchange_swaps_where_the_system_can(tmp_path):
    write_marker(tmp_path / "a", "a")
    write_marker(tmp_path / "b", "b")
    if not atomic_save.exchange_directories(tmp_path / "a", tmp_path / "b"):
        pytest.skip("this file system cannot exchange (the two-rename fallback is used)")
    assert (tmp_path / "a" / "marker").read_text() == "b"
    assert (tmp_path / "b" / "marker").read_text() == "a"


def test_recovery_rules(tmp_path):
    target = tmp_path / "model"
    # killed between the two renames: no target, the complete previous one is .old
    write_marker(old_sibling(target), "previous")
    write_marker(tmp_path / f".model{atomic_save.TMP_INFIX}123", "new, complete or not")
    recover_interrupted_save(target)
    assert (target / "marker").read_text() == "previous" and siblings(target) == ["model"]
    # killed after the second rename, before the .old one was deleted: it is stale
    write_marker(old_sibling(target), "stale")
    recover_interrupted_save(target)
    assert (target / "marker").read_text() == "previous" and siblings(target) == ["model"]
    # nothing to do
    recover_interrupted_save(tmp_path / "never-saved")
    assert siblings(target) == ["model"]


def test_a_failed_write_keeps_the_previous_directory(tmp_path):
    target = tmp_path / "dir"
    replace_directory_atomically(target, lambda tmp: write_marker(tmp, "previous"))

    def fail_halfway(directory: Path) -> None:
        write_marker(directory, "half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        replace_directory_atomically(target, fail_halfway)
    assert (target / "marker").read_text() == "previous" and siblings(target) == ["dir"]


def test_copy_directory_atomically(tmp_path):
    write_marker(tmp_path / "source", "copied")
    copy_directory_atomically(tmp_path / "source", tmp_path / "copy")
    copy_directory_atomically(tmp_path / "source", tmp_path / "copy")
    assert (tmp_path / "copy" / "marker").read_text() == "copied"
    assert sorted(os.listdir(tmp_path)) == ["copy", "source"]


# Kills (SIGKILL) during saves: the saving process is forked from this one, so it starts in
# milliseconds with the pipelines in memory; in it (only), the module's functions are
# wrapped to pause at chosen moments.


def pause_before(module, name: str, marker: Path, when: Callable[..., bool] = lambda *a: True):
    """In the forked child: module.name, called with arguments for which when() is true,
    first touches marker and sleeps (until the parent kills the child)."""
    original = getattr(module, name)

    def paused(*args, **kwargs):
        if when(*args):
            marker.touch()
            time.sleep(600)
        return original(*args, **kwargs)

    setattr(module, name, paused)


def pause_after(module, name: str, marker: Path, when: Callable[..., bool]):
    original = getattr(module, name)

    def paused(*args, **kwargs):
        result = original(*args, **kwargs)
        if when(*args):
            marker.touch()
            time.sleep(600)
        return result

    setattr(module, name, paused)


def save_alternately(pipelines, target: Path, ready: Path, exchange: bool, stage: Optional[str]):
    """The forked child: save B, A, B, ... to target until killed."""
    if not exchange:
        atomic_save.exchange_directories = lambda a, b: False
    paused = target.parent / "paused"
    if stage == "written":  # the new pipeline complete beside the target
        pause_before(atomic_save, "swap_into_place", paused)
    elif stage == "between renames":  # the target renamed to .old, the new one not yet in
        pause_after(atomic_save.os, "rename", paused, lambda src, dst: str(dst).endswith(".old"))
    elif stage == "before cleanup":  # swapped in; the previous one not yet deleted
        pause_before(atomic_save.shutil, "rmtree", paused)
    ready.touch()
    for index in range(1, 10**9):
        save_pipeline_atomically(pipelines[index % 2], target)


def kill_while_saving(
    pipelines, directory: Path, exchange: bool, stage: Optional[str], delay: float
) -> Path:
    """target holds A; a forked child saves B, A, ... to it; after delay seconds (random
    kills) or once the child pauses at stage (chosen kills), SIGKILL. Returns target."""
    target = directory / "model"
    save_pipeline_atomically(pipelines[0], target)
    ready, paused = directory / "ready", directory / "paused"
    context = multiprocessing.get_context("fork")
    child = context.Process(
        target=save_alternately, args=(pipelines, target, ready, exchange, stage), daemon=True
    )
    child.start()
    deadline = time.monotonic() + 60
    waiting_for = paused if stage else ready
    while not waiting_for.exists():
        assert child.is_alive() and time.monotonic() < deadline, "the saving process died"
        time.sleep(0.002)
    time.sleep(delay)
    child.kill()
    child.join()
    for marker in (ready, paused):
        if marker.exists():
            marker.unlink()
    return target


def check_after_kill(target: Path, pipelines, exchange: bool) -> list:
    """The target, if there, is a complete pipeline (A or B); where the two-rename swap
    was cut between its renames, recovery restores the previous one. Returns the output
    of the recovered pipeline."""
    expected = [output(nlp) for nlp in pipelines]
    if target.exists():
        recovered = output(spacy.load(target))
        recover_interrupted_save(target)  # removes the leftovers; the target stays
    else:
        assert not exchange and old_sibling(target).exists()
        recovered = output(load_pipeline(target))  # restores the previous one
    assert recovered in expected
    assert siblings(target) == ["model"]
    return recovered


@pytest.mark.parametrize(
    "exchange,stage,survivor",
    [
        (True, "written", "previous"),
        (False, "written", "previous"),
        (False, "between renames", "previous"),
        (True, "before cleanup", "new"),
        (False, "before cleanup", "new"),
    ],
)
@pytest.mark.slow
def test_kill_at_chosen_moments(tmp_path, pipelines, exchange, stage, survivor):
    if exchange and not can_exchange(tmp_path):
        pytest.skip("this system or file system cannot exchange directories")
    target = kill_while_saving(pipelines, tmp_path, exchange, stage, delay=0.0)
    recovered = check_after_kill(target, pipelines, exchange)
    # the child paused in its first save (of B, over A)
    assert recovered == output(pipelines[0] if survivor == "previous" else pipelines[1])


@pytest.mark.slow
def test_kill_at_random_moments(tmp_path, pipelines):
    rng = random.Random(SEED)
    start = time.perf_counter()
    save_pipeline_atomically(pipelines[1], tmp_path / "timing" / "model")
    save_seconds = time.perf_counter() - start
    shutil.rmtree(tmp_path / "timing")
    exchange_possible = can_exchange(tmp_path)
    for kill in range(5):
        directory = tmp_path / f"kill{kill}"
        directory.mkdir()
        exchange = exchange_possible and kill % 2 == 0
        delay = rng.uniform(0.0, 2.5 * save_seconds)
        target = kill_while_saving(pipelines, directory, exchange, None, delay)
        check_after_kill(target, pipelines, exchange)


# `spacy lmcrf train`


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return convert_ner_sample(tmp_path_factory.mktemp("sample"))


@pytest.mark.slow
def test_lmcrf_train_cli_writes_loadable_model_best_and_model_last(tmp_path, sample):
    out = tmp_path / "out"
    overrides = {
        "paths.train": sample / "sample_train.spacy",
        "paths.dev": sample / "sample_dev.spacy",
        **TINY_LMCRF,
    }
    config_path = ROOT / "configs" / "lmcrf_ner.cfg"
    command = [
        sys.executable,
        "-m",
        "spacy",
        "lmcrf",
        "train",
        str(config_path),
        "--output",
        str(out),
        *[f"--{key}={value}" for key, value in overrides.items()],
    ]
    result = subprocess.run(command, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Saved pipeline to output directory" in result.stdout
    assert sorted(os.listdir(out)) == ["model-best", "model-last"]
    for name in ("model-best", "model-last"):
        nlp = spacy.load(out / name)
        assert len(nlp("Peter Blackburn lives in Berlin .")) == 6
        performance = nlp.meta["performance"]
        assert {"ents_f", "ents_p", "ents_r", "lm_crf_ner_loss"} <= set(performance)
        assert nlp.meta["license"] == "MIT"  # [initialize.after_init] ran


@registry.callbacks("test_atomic_save.describe.v1")
def describe_before_to_disk(text: str) -> Callable[[Language], Language]:
    def before_to_disk(nlp: Language) -> Language:
        nlp.meta["description"] = text
        return nlp

    return before_to_disk


def test_train_pipeline_runs_the_callbacks_and_saves_when_one_stops_it(tmp_path, sample):
    """[training.before_update] (stop_after_minutes raises a SystemExit, as a spent
    budget does) and [training.before_to_disk] work as in `spacy train`: model-best from
    the first evaluation, model-last saved on the way out. A killed run's leftovers in the
    output directory are removed."""
    overrides = {
        "paths.train": str(sample / "sample_train.spacy"),
        "paths.dev": str(sample / "sample_dev.spacy"),
        **TINY_LMCRF,
        "training.max_steps": 1000,
    }
    config = load_config(ROOT / "configs" / "lmcrf_ner.cfg", overrides=overrides)
    config["training"]["before_update"] = {
        "@callbacks": "spacy_lmcrf.stop_after_minutes.v1",
        "minutes": 1e-6,
    }
    config["training"]["before_to_disk"] = {
        "@callbacks": "test_atomic_save.describe.v1",
        "text": "saved atomically",
    }
    config.to_disk(tmp_path / "config.cfg")
    out = tmp_path / "out"
    for leftover in (".model-best.old", f".model-last{atomic_save.TMP_INFIX}99999", "model-best"):
        write_marker(out / leftover, "a killed run's")
    with pytest.raises(TrainingBudgetSpent):
        train_pipeline(tmp_path / "config.cfg", out)
    assert sorted(os.listdir(out)) == ["model-best", "model-last"]
    for name in ("model-best", "model-last"):
        nlp = spacy.load(out / name)
        assert nlp.meta["description"] == "saved atomically"
        assert "ents_f" in nlp.meta["performance"]
