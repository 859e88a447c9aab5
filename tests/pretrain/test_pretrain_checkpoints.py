"""LM pretraining checkpoints between evaluations: every [training] checkpoint_minutes,
and when SIGINT or SIGTERM stops the run; `--resume` from any of them continues exactly
as the run would have gone on."""

import dataclasses
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import pytest
import torch

from spacy_lmcrf.ml.modules.char_lm import BiCharLM
from spacy_lmcrf.ml.modules.tensor_file import read_tensor_file
from spacy_lmcrf.ml.modules.word_lm import BiWordLM
from spacy_lmcrf.pretrain import char_lm_training, word_lm_training
from spacy_lmcrf.pretrain.char_lm_training import load_pretraining_config, pretrain_char_lm
from spacy_lmcrf.pretrain.lm_training import CHECKPOINT, pretrain_lms
from spacy_lmcrf.pretrain.loop import CheckpointTimer

from ..util import ROOT
from .test_char_lm_pretraining import read_log, text_dir  # noqa: F401 (text_dir: a fixture)
from .test_char_lm_pretraining import tiny_config as char_config
from .test_word_lm_pretraining import tiny_config as word_config

# kind -> (task, settings reader, tiny config, model class, last file)
KINDS = {
    "char": (
        char_lm_training.CHAR_LM_TASK,
        char_lm_training.read_settings,
        char_config,
        BiCharLM,
        "char_lm-last.msgpack",
    ),
    "word": (
        word_lm_training.WORD_LM_TASK,
        word_lm_training.read_settings,
        word_config,
        BiWordLM,
        "word_lm-last.msgpack",
    ),
}


def pretrain_with_action(
    kind: str, config, output_dir: Path, at_step: int, action: Callable[[], None]
):
    """pretrain_lms on config, with action() run at the end of optimizer step number
    at_step (as if a signal or a crash came while that step was under way)."""
    task, read_settings = KINDS[kind][:2]

    def make_optimizer(params, training):
        optimizer = task.make_optimizer(params, training)
        step, calls = optimizer.step, itertools.count(1)

        def step_then_act(*args, **kwargs):
            result = step(*args, **kwargs)
            if next(calls) == at_step:
                action()
            return result

        optimizer.step = step_then_act
        return optimizer

    hooked = dataclasses.replace(task, make_optimizer=make_optimizer)
    return pretrain_lms(hooked, read_settings(config), output_dir, show_progress=False)


def pretrain(kind: str, config, output_dir: Path):
    task, read_settings = KINDS[kind][:2]
    return pretrain_lms(task, read_settings(config), output_dir, show_progress=False)


def resume(kind: str, config, output_dir: Path):
    task, read_settings = KINDS[kind][:2]
    return pretrain_lms(task, read_settings(config), output_dir, resume=True, show_progress=False)


def assert_same_run(kind: str, straight: Path, resumed: Path) -> None:
    """The same last model, and the same evaluations (train and dev measures) in the log."""
    model_class, last_file = KINDS[kind][3:]
    a = model_class.load(straight / last_file).state_dict()
    b = model_class.load(resumed / last_file).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert evaluations(straight) == evaluations(resumed)


def evaluations(output_dir: Path):
    """The log's evaluation records, without their wall-clock seconds."""
    records = read_log(output_dir / "log.jsonl")
    return [
        {k: v for k, v in r.items() if k != "seconds"} for r in records if r["event"] == "evaluate"
    ]


def max_abs_difference(kind: str, a: Path, b: Path) -> float:
    """The largest difference between the weights of two runs' last LM files."""
    model_class, last_file = KINDS[kind][3:]
    weights_a = model_class.load(a / last_file).state_dict()
    weights_b = model_class.load(b / last_file).state_dict()
    assert weights_a.keys() == weights_b.keys()
    return max(float((weights_a[k] - weights_b[k]).abs().max()) for k in weights_a)


def checkpoint_step(output_dir: Path) -> int:
    return read_tensor_file(output_dir / CHECKPOINT)[1]["progress"]["step"]


def test_checkpoint_timer():
    timer = CheckpointTimer(0.5, now=100.0)
    assert not timer.due(129.9) and timer.due(130.0)
    timer.reset(131.0)
    assert not timer.due(160.9) and timer.due(161.0)
    assert not CheckpointTimer(0, now=0.0).due(1e9)
    with pytest.raises(ValueError, match="checkpoint_minutes"):
        CheckpointTimer(-1, now=0.0)


def test_negative_checkpoint_minutes_is_an_error(text_dir):  # noqa: F811
    with pytest.raises(ValueError, match="checkpoint_minutes must be 0"):
        pretrain_char_lm(char_config(text_dir / "train", checkpoint_minutes=-1), text_dir / "out")


@pytest.mark.slow
@pytest.mark.parametrize("kind,max_steps,stop_at", [("char", 50, 33), ("word", 40, 23)])
def test_sigint_writes_a_checkpoint_that_resumes_exactly(
    text_dir,  # noqa: F811 (the fixture imported above)
    kind,
    max_steps,
    stop_at,
):
    make_config = KINDS[kind][2]
    config = make_config(
        text_dir / "train", text_dir / "dev.txt", max_steps=max_steps, checkpoint_minutes=0
    )
    straight, stopped = text_dir / "straight", text_dir / "stopped"
    pretrain(kind, config, straight)
    handler = signal.getsignal(signal.SIGINT)
    record = pretrain_with_action(
        kind, config, stopped, stop_at, lambda: os.kill(os.getpid(), signal.SIGINT)
    )
    assert signal.getsignal(signal.SIGINT) is handler
    assert record["signal"] == "SIGINT" and record["step"] == stop_at
    assert checkpoint_step(stopped) == stop_at
    log = read_log(stopped / "log.jsonl")
    assert log[-2] == {**log[-2], "event": "checkpoint", "trigger": "SIGINT", "step": stop_at}
    assert log[-1]["event"] == "end" and log[-1]["reason"] == "SIGINT"
    # (resuming under another checkpoint_minutes is allowed)
    final = resume(
        kind, {**config, "training": {**config["training"], "checkpoint_minutes": 5}}, stopped
    )
    assert final["step"] == max_steps and "signal" not in final
    assert_same_run(kind, straight, stopped)


@pytest.mark.slow
def test_time_checkpoints_survive_a_crash_and_resume_exactly(text_dir):  # noqa: F811
    config = char_config(
        text_dir / "train", text_dir / "dev.txt", max_steps=50, checkpoint_minutes=1e-9
    )  # due after every step
    straight, crashed = text_dir / "straight", text_dir / "crashed"
    pretrain_char_lm(
        {**config, "training": {**config["training"], "checkpoint_minutes": 0}},
        straight,
        show_progress=False,
    )
    handlers = [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)]

    def crash():
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError, match="killed"):
        pretrain_with_action("char", config, crashed, 33, crash)
    assert [signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)] == handlers
    # step 33 crashed before its checkpoint: the last one is step 32's, written on time
    assert checkpoint_step(crashed) == 32
    triggers = [
        (r["step"], r["trigger"])
        for r in read_log(crashed / "log.jsonl")
        if r["event"] == "checkpoint"
    ]
    assert triggers == [(step, "time") for step in range(1, 33) if step != 20]
    resume("char", config, crashed)
    assert_same_run("char", straight, crashed)


def test_a_second_signal_aborts(text_dir, capfd):  # noqa: F811
    config = char_config(
        text_dir / "train", text_dir / "dev.txt", max_steps=50, checkpoint_minutes=0
    )

    def signal_twice():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)

    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt, match="SIGINT again"):
        pretrain_with_action("char", config, text_dir / "out", 25, signal_twice)
    assert signal.getsignal(signal.SIGINT) is handler
    assert checkpoint_step(text_dir / "out") == 20  # the last evaluation's, intact
    notice = (
        f"SIGINT: stopping after this step to write a checkpoint to {text_dir / 'out' / CHECKPOINT}"
    )
    assert notice in capfd.readouterr().err


@pytest.mark.slow
def test_sigterm_stops_the_cli_with_a_checkpoint_that_resumes(text_dir):  # noqa: F811
    out = text_dir / "cli_out"
    overrides = {
        "paths.train": str(text_dir / "train"),
        "paths.dev": str(text_dir / "dev.txt"),
        "model.hidden_size": 16,
        "model.embedding_size": 8,
        "training.batch_size": 4,
        "training.bptt": 16,
        "training.eval_every": 5,
        "training.max_minutes": 2,
    }
    args = [f"--{key}={value}" for key, value in overrides.items()]
    config_path = ROOT / "configs" / "charlm_en.cfg"
    command = [
        sys.executable,
        "-m",
        "spacy",
        "lmcrf",
        "pretrain-char-lm",
        str(config_path),
        str(out),
        *args,
    ]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        log = out / "log.jsonl"
        while not (log.exists() and '"evaluate"' in log.read_text()):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()
            time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 128 + signal.SIGTERM, stdout + stderr
    assert "SIGTERM" in stdout + stderr and "Traceback" not in stderr
    assert (
        f"SIGTERM: stopping after this step to write a checkpoint to {out / CHECKPOINT}" in stderr
    )
    end = read_log(out / "log.jsonl")[-1]
    assert end["event"] == "end" and end["signal"] == "SIGTERM"
    stopped_at = end["step"]
    assert checkpoint_step(out) == stopped_at
    # go on for 3 more steps: the same as a run that went there without stopping
    more = {**overrides, "training.max_steps": stopped_at + 3}
    config = load_pretraining_config(config_path, more)
    final = pretrain_char_lm(config, out, resume=True, show_progress=False)
    assert final["step"] == stopped_at + 3
    straight = pretrain_char_lm(config, text_dir / "straight", show_progress=False)
    assert straight["step"] == stopped_at + 3
    a = BiCharLM.load(out / "char_lm-last.msgpack").state_dict()
    b = BiCharLM.load(text_dir / "straight" / "char_lm-last.msgpack").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    json.dumps(final)  # the returned record stays JSON-ready
