"""configs/taglm_*.cfg pass `spacy debug config`, initialize and train (with the LMs and
as the baseline without LM, at each injection point); TagLM's schedule divides the
rate after the best dev score and stops `spacy train` cleanly; it fails loudly when no
logger reports dev scores."""

import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.cli.debug_config import debug_config
from spacy.training.initialize import init_nlp
from spacy.util import load_config, registry, resolve_dot_names

from spacy_lmcrf.training.dev_scores import claim_listeners, publish_dev_score
from spacy_lmcrf.training.optimizers import DropAfterBestDevSchedule

from .util import chunk_examples, ner_examples, save_tiny_word_lm, write_task_corpora

ROOT = Path(__file__).parents[1]
CONFIGS = ROOT / "configs"
PROJECTION = 6
TASKS = {"ner": ("lm_crf_ner", ner_examples), "chunk": ("lm_crf_spans", chunk_examples)}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("taglm")
    write_task_corpora(tmp, {task: make_examples for task, (_, make_examples) in TASKS.items()})
    save_tiny_word_lm(tmp / "word_lm.msgpack", PROJECTION)
    return tmp


def overrides(task, data, with_lm=True, **extra):
    model = f"components.{TASKS[task][0]}.model.tok2vec."
    result = {
        "paths.train": str(data / f"{task}.spacy"),
        "paths.dev": str(data / f"{task}.spacy"),
        "paths.word_lm": str(data / "word_lm.msgpack"),
        model + "bilm.output_size": PROJECTION,
        model + "word_embed.width": 8,
        model + "width": 8,
        "training.optimizer.learn_rate.steps_per_epoch": 1,
    }
    if not with_lm:
        result = {k: v for k, v in result.items() if not k.startswith(model + "bilm")}
        result[model + "bilm"] = None
    result.update({model + k if not k.startswith("training") else k: v for k, v in extra.items()})
    return result


@pytest.mark.parametrize("task", list(TASKS))
def test_debug_config(task, data):
    debug_config(CONFIGS / f"taglm_{task}.cfg", overrides=overrides(task, data))


@pytest.mark.parametrize(
    "task,with_lm,position",
    [
        ("ner", True, "layer1"),
        ("ner", True, "input"),
        ("ner", True, "layer2"),
        ("ner", False, "layer1"),
        ("chunk", True, "layer1"),
    ],
)
@pytest.mark.slow
def test_config_initializes_and_trains(task, with_lm, position, data):
    component = TASKS[task][0]
    config = load_config(
        CONFIGS / f"taglm_{task}.cfg",
        overrides=overrides(task, data, with_lm, lm_position=position),
    )
    nlp = init_nlp(config)
    optimizer, train_corpus = resolve_dot_names(
        nlp.config.interpolate(), ["training.optimizer", "corpora.train"]
    )
    schedule = optimizer.schedules["learn_rate"]
    assert isinstance(schedule, DropAfterBestDevSchedule) and optimizer.grad_norm_clip == 5.0
    assert schedule in claim_listeners()  # as the logger of `spacy train` does
    examples = list(train_corpus(nlp))
    first = nlp.update(examples, sgd=optimizer)[component]
    optimizer.step_schedules()
    publish_dev_score(
        [schedule], {"score": 0.0, "step": 0, "epoch": 0}
    )  # spaCy evaluates at step 0
    for _ in range(4):
        last = nlp.update(examples, sgd=optimizer)[component]
        optimizer.step_schedules()
    assert 0 < last < first
    has_lm = any(node.name == "bilm_embeddings" for node in nlp.get_pipe(component).model.walk())
    assert has_lm == with_lm


def schedule(**settings):
    return registry.resolve(
        {
            "s": {
                "@schedules": "spacy_lmcrf.drop_after_best_dev.v1",
                "initial_rate": 1.0,
                "steps_per_epoch": 2,
                "epochs_per_drop": 1,
                "patience": 2,
                **settings,
            }
        }
    )["s"]


def test_schedule_divides_after_the_best_score_then_stops():
    from spacy_lmcrf.training.callbacks import TrainingScheduleDone

    s = schedule()
    assert next(s) == 1.0
    claim_listeners()
    rates = []
    scores = iter([0.1, 0.5, 0.4, 0.45, 0.6, 0.7, 0.8, 0.9, 0.95])
    with pytest.raises(TrainingScheduleDone):
        for step in range(100):
            rates.append(next(s))
            s.observe_dev_score(next(scores), step=step, epoch=step // 2)
    # best 0.5 at step 1; two evaluations without a better one (0.4, 0.45) -> / 10 for one
    # epoch (2 steps), / 10 again for 2 steps, then the next evaluation stops training. As
    # in spaCy's loop, the rate returned after step k's update is used by update k + 1,
    # so the last one (at the stopping step) is never used.
    assert rates == pytest.approx([1.0, 1.0, 1.0, 1.0, 0.1, 0.1, 0.01, 0.01, 0.01])
    assert s.drops_done == 2 and s.finished


def test_the_logger_claims_the_newest_schedule_only():
    """`spacy train` resolves [training] twice; only the second resolution's schedule is
    stepped, so only it hears the dev scores."""
    first, second = schedule(), schedule()
    assert claim_listeners() == [second]
    assert second.connected and not first.connected
    assert claim_listeners() == []


def test_schedule_without_dev_scores_fails_loudly():
    s = schedule()
    next(s)
    with pytest.raises(RuntimeError, match="no training logger reports it"):
        next(s)
    connected = schedule()
    next(connected)
    claim_listeners()
    next(connected)
    with pytest.raises(RuntimeError, match="received no dev score"):
        next(connected)


@pytest.mark.slow
def test_spacy_train_divides_the_rate_and_stops(tmp_path, data):
    cli = [f"--{key}={value}" for key, value in overrides("ner", data).items()]
    out = tmp_path / "out"
    train = subprocess.run(
        [
            sys.executable,
            "-m",
            "spacy",
            "train",
            str(CONFIGS / "taglm_ner.cfg"),
            "--output",
            str(out),
            "--training.eval_frequency=1",
            "--training.max_steps=300",
            "--training.max_epochs=0",
            "--training.optimizer.learn_rate.patience=1",
            "--training.optimizer.learn_rate.epochs_per_drop=2",
            *cli,
        ],
        capture_output=True,
        text=True,
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
