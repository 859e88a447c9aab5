"""`spacy lmcrf train --resume`: a run killed with SIGKILL goes on from its checkpoint to the
same weights and dev scores as a run that was never stopped; a checkpoint whose writer was
killed is never read; what cannot be resumed ends with a one-line error."""

import json
import os
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Iterator, List

import numpy
import pytest
import spacy
import torch
from thinc.api import Adam, Config, Optimizer, PyTorchShim, warmup_linear

from spacy_lmcrf.cli import run_as_program
from spacy_lmcrf.ml.modules.tensor_file import tensors_from_bytes, tensors_to_bytes
from spacy_lmcrf.training.checkpoint import (
    Checkpoint,
    CheckpointCadence,
    ResumeError,
    TrainBatchStream,
    check_resumable_config,
    optimizer_state,
    parameter_names,
    read_checkpoint,
    remove_finished_checkpoint,
    restore_optimizer,
)
from spacy_lmcrf.training.optimizers import SGD_momentum, adagrad, anneal_on_loss_plateau

from ..util import ROOT, TINY_TOK2VEC, convert_ner_sample, make_nlp, ner_examples

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
N_STEPS = 10
# batches of 100 sentences: about 4 per epoch of the sample, so a run of N_STEPS crosses
# two epoch boundaries and a checkpoint falls in the middle of an epoch
BATCH_SIZE = 100
# `spacy lmcrf train`, with SIGKILL sent to itself right after the checkpoint taken after
# KILL_AT_STEP steps is on disk, or (KILL_DURING_WRITE) while that checkpoint is being
# written: its state file half written, not yet swapped in
DRIVER = """
import os, signal, sys
from pathlib import Path
from spacy_lmcrf.training import checkpoint, train
from spacy_lmcrf.cli import run_as_program

kill_at = int(os.environ["KILL_AT_STEP"])
during_write = bool(os.environ.get("KILL_DURING_WRITE"))
write_checkpoint = train.write_checkpoint
replace_directory_atomically = checkpoint.replace_directory_atomically
step = [None]

def write_then_kill(path, nlp, optimizer, progress, stream, config, **options):
    step[0] = progress.step
    written = write_checkpoint(path, nlp, optimizer, progress, stream, config, **options)
    if progress.step == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    return written

def replace(path, write):
    def write_half(directory):
        write(directory)
        state = Path(directory) / checkpoint.STATE_FILE
        state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])
        os.kill(os.getpid(), signal.SIGKILL)

    killing = during_write and step[0] == kill_at
    return replace_directory_atomically(path, write_half if killing else write)

train.write_checkpoint = write_then_kill
checkpoint.replace_directory_atomically = replace
sys.exit(run_as_program("train", sys.argv[1:], "spacy lmcrf train"))
"""


def write_config(directory: Path) -> Path:
    """configs/lmcrf_ner.cfg with a schedule that keeps state: the learning rate halves
    after each epoch of 2 batches whose loss was not the best."""
    config = Config().from_disk(ROOT / "configs" / "lmcrf_ner.cfg", interpolate=False)
    config["training"]["optimizer"]["learn_rate"] = {
        "@schedules": "spacy_lmcrf.anneal_on_loss_plateau.v1",
        "initial_rate": 0.05,
        "steps_per_epoch": 2,
        "patience": 1,
    }
    config.to_disk(directory / "config.cfg")
    return directory / "config.cfg"


def training_args(corpus: Path, output: Path, max_steps: int = N_STEPS) -> List[str]:
    """The config of write_config in corpus, tiny, evaluated every 3 steps on 20 sentences."""
    args = [
        str(corpus / "config.cfg"),
        "--output",
        str(output),
        "--paths.train",
        str(corpus / "train.spacy"),
        "--paths.dev",
        str(corpus / "dev.spacy"),
        "--corpora.dev.limit",
        "20",
        "--training.max_steps",
        str(max_steps),
        "--training.eval_frequency",
        "3",
        "--training.batcher.size",
        str(BATCH_SIZE),
        "--training.batcher.buffer",
        "2",
        "--training.logger.@loggers",
        "spacy_lmcrf.TimedLogger.v1",
        "--training.logger.path",
        str(output / "log.jsonl"),
        "--training.logger.console_output",
        "false",
    ]
    for key in ("char_dim", "char_hidden", "width", "word_dim"):
        args += [f"--components.lm_crf_ner.model.tok2vec.{key}", str(TINY_TOK2VEC[key])]
    return args


def run_train(args: List[str], **kill: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", DRIVER, *args]
    env = {**ENV, "KILL_AT_STEP": "-1", **kill}
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)


def evaluations(output: Path) -> List[Dict[str, Any]]:
    """What each evaluation in the TimedLogger's file reports but times: step, epoch,
    words, dev scores (without the speed), training losses since the evaluation before."""
    records = [json.loads(line) for line in (output / "log.jsonl").read_text().splitlines()]
    return [
        {key: value for key, value in record.items() if key != "seconds"}
        | {"scores": {k: v for k, v in record["scores"].items() if k != "speed"}}
        for record in records
        if record["event"] == "evaluate"
    ]


def same_evaluations(first: List[Dict[str, Any]], second: List[Dict[str, Any]]) -> bool:
    """The same steps and scores; the losses (sums of floats) within 1e-6 of each other."""
    for a, b in zip(first, second, strict=True):
        if {**a, "losses": None} != {**b, "losses": None}:
            return False
        if a["losses"] != pytest.approx(b["losses"], rel=1e-6, abs=1e-6):
            return False
    return True


def weights(path: Path) -> Dict[str, numpy.ndarray]:
    """Every parameter of the saved pipeline's lm_crf_ner, by its place in the model."""
    model = spacy.load(path).get_pipe("lm_crf_ner").model
    found = {}
    for index, node in enumerate(model.walk()):
        for name in node.param_names:
            if node.has_param(name):
                found[f"{index}:{name}"] = numpy.asarray(node.get_param(name), dtype="float64")
        for shim in node.shims:
            if isinstance(shim, PyTorchShim):
                for name, tensor in shim._model.state_dict().items():
                    found[f"{index}:{name}"] = tensor.detach().cpu().double().numpy()
    return found


def max_weight_difference(a: Path, b: Path) -> float:
    first, second = weights(a), weights(b)
    assert first.keys() == second.keys()
    return max(float(numpy.abs(first[k] - second[k]).max(initial=0.0)) for k in first)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    directory = convert_ner_sample(tmp_path_factory.mktemp("corpus"), prefix="")
    write_config(directory)
    return directory


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory, corpus) -> Path:
    """A run of N_STEPS steps that nothing stopped (and that wrote no checkpoints)."""
    output = tmp_path_factory.mktemp("uninterrupted")
    result = run_train(training_args(corpus, output))
    assert result.returncode == 0, result.stdout + result.stderr
    return output


@pytest.fixture(scope="module")
def killed(tmp_path_factory, corpus) -> Path:
    """A run checkpointing every 5 steps, killed right after its first checkpoint (5 steps
    done, in the second epoch) is on disk."""
    output = tmp_path_factory.mktemp("killed")
    result = run_train(
        [*training_args(corpus, output), "--checkpoint-steps", "5"], KILL_AT_STEP="5"
    )
    assert result.returncode == -signal.SIGKILL, result.stdout + result.stderr
    return output


def check_same_as_uninterrupted(resumed: Path, uninterrupted: Path) -> None:
    assert same_evaluations(evaluations(resumed), evaluations(uninterrupted))
    assert max_weight_difference(resumed / "model-last", uninterrupted / "model-last") <= 1e-6
    assert max_weight_difference(resumed / "model-best", uninterrupted / "model-best") <= 1e-6
    meta = json.loads((resumed / "model-last" / "meta.json").read_text())
    reference = json.loads((uninterrupted / "model-last" / "meta.json").read_text())
    performance, expected = meta["performance"], reference["performance"]
    assert performance.keys() == expected.keys()
    for key in expected.keys() - {"speed"}:  # the per-type scores nest: no approx
        assert performance[key] == expected[key] or performance[key] == pytest.approx(
            expected[key], rel=1e-6
        ), key


@pytest.mark.slow
def test_resume_after_sigkill_matches_an_uninterrupted_run(tmp_path, corpus, uninterrupted, killed):
    output = tmp_path / "resumed"
    shutil.copytree(killed, output)
    checkpoint = read_checkpoint(output / "checkpoint")
    assert checkpoint.progress.step == 5
    assert checkpoint.progress.epoch == 1  # stopped in the middle of the second epoch
    assert 0 < checkpoint.progress.batches_in_epoch
    saved_schedule = checkpoint.meta["optimizer"]["schedules"]["learn_rate"]["state"]
    assert saved_schedule["calls"] == 6 and saved_schedule["history"]  # it has seen an epoch
    assert [e["step"] for e in evaluations(output)] == [0, 3]  # the killed run's log
    result = run_train([*training_args(corpus, output), "--checkpoint-steps", "5", "--resume"])
    assert result.returncode == 0, result.stdout + result.stderr
    check_same_as_uninterrupted(output, uninterrupted)
    assert [e["step"] for e in evaluations(output)] == [0, 3, 6, 9]
    last = read_checkpoint(output / "checkpoint")
    assert last.progress.step == N_STEPS + 1 and last.meta["finished"]
    remove_finished_checkpoint(output / "checkpoint")  # what a new run in output does
    assert not (output / "checkpoint").exists()


@pytest.mark.slow
def test_a_checkpoint_killed_while_written_is_never_read(tmp_path, corpus):
    output = tmp_path / "out"
    result = run_train(
        [*training_args(corpus, output), "--checkpoint-steps", "3"],
        KILL_AT_STEP="6",
        KILL_DURING_WRITE="1",
    )
    assert result.returncode == -signal.SIGKILL, result.stdout + result.stderr
    half_written = [p for p in output.iterdir() if p.name.startswith(".checkpoint.tmp-")]
    assert len(half_written) == 1 and (half_written[0] / "model").is_dir()
    with pytest.raises(ValueError):  # the state file is cut short
        read_checkpoint(half_written[0])
    # what --resume reads: the checkpoint after 3 steps, whole; the half-written one is gone
    assert read_checkpoint(output / "checkpoint").progress.step == 3
    assert not half_written[0].exists()


@pytest.mark.slow
def test_resume_refuses_a_changed_config(tmp_path, corpus, killed, capsys):
    output = tmp_path / "out"
    shutil.copytree(killed, output)
    args = [*training_args(corpus, output), "--resume", "--training.optimizer.momentum", "0.5"]
    assert run_as_program("train", args, "spacy lmcrf train") == 1
    error = capsys.readouterr().err
    assert "Error: --resume: the config differs" in error
    assert "training.optimizer.momentum" in error


@pytest.mark.slow
def test_a_new_run_refuses_to_drop_an_unfinished_checkpoint(tmp_path, corpus, killed, capsys):
    output = tmp_path / "out"
    shutil.copytree(killed, output)
    assert run_as_program("train", training_args(corpus, output), "spacy lmcrf train") == 1
    error = capsys.readouterr().err
    assert "holds the checkpoint of an unfinished run (5 steps done): add --resume" in error
    assert read_checkpoint(output / "checkpoint").progress.step == 5


def test_resume_without_a_checkpoint_is_an_error(tmp_path, capsys):
    output = tmp_path / "out"
    output.mkdir()
    args = [str(ROOT / "configs" / "lmcrf_ner.cfg"), "--output", str(output), "--resume"]
    assert run_as_program("train", args, "spacy lmcrf train") == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert error[-1].startswith("Error: --resume: there is no checkpoint at ")


def test_resumable_config_changes():
    saved = Config().from_str(
        (ROOT / "configs" / "lmcrf_ner.cfg").read_text(encoding="utf8"), interpolate=False
    )
    changed = Config(saved, section_order=None).copy()
    changed["training"]["max_steps"] = 5000
    changed["training"]["patience"] = 10
    changed["training"]["eval_frequency"] = 100
    check_resumable_config(saved, changed)
    changed["paths"]["train"] = "other.spacy"
    changed["components"]["lm_crf_ner"]["model"]["tok2vec"]["width"] = 7
    with pytest.raises(ResumeError) as error:
        check_resumable_config(saved, changed)
    message = str(error.value)
    assert "paths.train" in message and "corpora.train.path" in message
    assert "components.lm_crf_ner.model.tok2vec.width" in message
    assert "training.max_steps" not in message.split("; ")[0]


def shuffled_chunks(items: List[int]) -> Iterator[List[int]]:
    """A batcher that draws from `random` while it is iterated (as batch_by_length)."""
    for start in range(0, len(items), 6):
        chunk = items[start : start + 6]
        batches = [chunk[i : i + 2] for i in range(0, len(chunk), 2)]
        random.shuffle(batches)
        yield from batches


def test_batch_stream_resumes_with_the_same_batches():
    """Stopped anywhere, a stream resumed from its epoch's start gives the batches that
    followed, however much training drew from `random` between two batches."""
    corpus = list(range(20))

    def stream() -> TrainBatchStream:
        return TrainBatchStream(None, lambda nlp: corpus, shuffled_chunks, max_epochs=3)  # type: ignore[arg-type]

    random.seed(0)
    full = [(epoch, index, batch) for epoch, index, batch in stream()]
    assert len({epoch for epoch, _, _ in full}) == 3
    for stop in (1, 7, 10, 17):
        random.seed(0)
        first = stream()
        batches = iter(first)
        seen = []
        for _ in range(stop):
            seen.append(next(batches))
            random.random()  # training's own draws
        epoch, index, _ = seen[-1]
        resumed = stream()
        resumed.resume_at(epoch, index + 1, first.epoch_start(epoch))
        random.seed(1)  # whatever the generator's state now
        assert seen + list(resumed) == full


def test_checkpoint_cadence():
    assert not CheckpointCadence().enabled
    by_steps = CheckpointCadence(steps=5)
    assert [s for s in range(1, 12) if by_steps.due(s, 0.0)] == [5, 10]
    by_time = CheckpointCadence(minutes=1.0)
    by_time.start(30.0)
    assert not by_time.due(3, 60.0) and by_time.due(4, 90.0)
    with pytest.raises(ValueError):
        CheckpointCadence(minutes=-1)


def test_random_states_round_trip(tmp_path):
    from spacy_lmcrf.training.checkpoint import Checkpoint, random_states, restore_random_states

    random.seed(3)
    numpy.random.seed(3)
    torch.manual_seed(3)
    tensors, meta = random_states()
    expected = (random.random(), numpy.random.rand(), torch.rand(1).item())
    random.seed(4)
    numpy.random.seed(4)
    torch.manual_seed(4)
    restore_random_states(Checkpoint(tmp_path, tensors, {"random": meta}))
    assert (random.random(), numpy.random.rand(), torch.rand(1).item()) == expected


def adam_with_warmup() -> Optimizer:
    """Thinc's mom1, mom2 and averages; a generator schedule, which a resume replays."""
    return Adam(warmup_linear(0.01, warmup_steps=2, total_steps=10), use_averages=True)


def sgd_with_plateau() -> Optimizer:
    """MomentumSGD.velocities; a schedule with state, saved and restored."""
    return SGD_momentum(anneal_on_loss_plateau(0.05, steps_per_epoch=1, patience=1))


def adagrad_constant() -> Optimizer:
    """Adagrad's accumulators."""
    return adagrad(0.05)


@pytest.mark.slow
@pytest.mark.parametrize("make_optimizer", [adam_with_warmup, sgd_with_plateau, adagrad_constant])
def test_optimizer_state_restored_into_a_rebuilt_pipeline(tmp_path, make_optimizer):
    """Saved by parameter names, the state of an optimizer goes on in a pipeline built again
    (other model ids): the next update is the one the first pipeline makes."""
    nlp = make_nlp("lm_crf_ner")
    examples = ner_examples(nlp)
    nlp.initialize(lambda: examples)
    optimizer = make_optimizer()
    for _ in range(3):
        nlp.update(examples, sgd=optimizer)
        optimizer.step_schedules()
    tensors, meta = optimizer_state(optimizer, parameter_names(nlp), steps_done=3)
    tensors, meta = tensors_from_bytes(tensors_to_bytes(tensors, {"optimizer": meta}))
    rebuilt = make_nlp("lm_crf_ner")
    rebuilt.initialize(lambda: ner_examples(rebuilt))
    rebuilt.from_bytes(nlp.to_bytes())
    restored = make_optimizer()
    restore_optimizer(restored, rebuilt, Checkpoint(tmp_path, tensors, meta))
    assert restored.learn_rate == optimizer.learn_rate
    for pipeline, optimizer_ in ((nlp, optimizer), (rebuilt, restored)):
        pipeline.update(ner_examples(pipeline), sgd=optimizer_)
        optimizer_.step_schedules()
        assert optimizer_.learn_rate == optimizer.learn_rate
    nlp.to_disk(tmp_path / "first")
    rebuilt.to_disk(tmp_path / "rebuilt")
    assert max_weight_difference(tmp_path / "first", tmp_path / "rebuilt") == 0.0
