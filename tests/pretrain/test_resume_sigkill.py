"""A pretraining run killed with SIGKILL (no handler, no cleanup: the process simply
ends) right after a checkpoint goes on with --resume to the same weights and the same
evaluations as a run that was never stopped."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from spacy_lmcrf.ml.modules.tensor_file import read_tensor_file
from spacy_lmcrf.pretrain.lm_training import CHECKPOINT

from ..util import ROOT
from .test_char_lm_pretraining import text_dir  # noqa: F401 (a fixture)
from .test_pretrain_checkpoints import (
    KINDS,
    evaluations,
    max_abs_difference,
    pretrain,
    resume,
)

# Runs pretrain_lms in a process of its own that SIGKILLs itself: "step" at the end of
# optimizer step number kill_at (the step after a checkpoint is under way), "checkpoint"
# as it begins to write step kill_at's checkpoint (at an evaluation: its log record and
# LM files written, the checkpoint not)
KILLED_RUN = """
import os, signal, sys
from pathlib import Path
from thinc.api import Config
import spacy_lmcrf.pretrain.lm_training as lm_training
from tests.pretrain.test_pretrain_checkpoints import pretrain, pretrain_with_action
kind, config_path, output_dir, when, kill_at = sys.argv[1:6]
config = Config().from_disk(config_path)
kill = lambda: os.kill(os.getpid(), signal.SIGKILL)
if when == "step":
    pretrain_with_action(kind, config, Path(output_dir), int(kill_at), kill)
else:
    write = lm_training.write_tensor_file

    def write_or_die(path, tensors, meta):
        if meta["progress"]["step"] == int(kill_at):
            kill()
        write(path, tensors, meta)

    lm_training.write_tensor_file = write_or_die
    pretrain(kind, config, Path(output_dir))
"""


def run_killed(kind: str, config, output_dir: Path, when: str, kill_at: int) -> None:
    """Train config in a subprocess that SIGKILL ends (see KILLED_RUN)."""
    config_path = output_dir.parent / f"{output_dir.name}.cfg"
    config.to_disk(config_path)
    process = subprocess.run(
        [sys.executable, "-c", KILLED_RUN, kind, str(config_path), str(output_dir), when]
        + [str(kill_at)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == -signal.SIGKILL, process.stdout + process.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind,checkpoints,checkpoint_step",
    [
        ("char", {"eval_every": 10, "checkpoint_minutes": 0}, 30),  # at an evaluation
        ("char", {"eval_every": 20, "checkpoint_minutes": 1e-9}, 27),  # on time, every step
        ("word", {"eval_every": 10, "checkpoint_minutes": 0}, 20),
    ],
)
def test_sigkill_after_a_checkpoint_then_resume_reaches_the_same_weights(
    text_dir,  # noqa: F811 (the fixture imported above)
    kind,
    checkpoints,
    checkpoint_step,
):
    make_config = KINDS[kind][2]
    config = make_config(text_dir / "train", text_dir / "dev.txt", max_steps=50, **checkpoints)
    straight, killed = text_dir / "straight", text_dir / "killed"
    pretrain(kind, config, straight)
    run_killed(kind, config, killed, "step", checkpoint_step + 1)
    assert read_tensor_file(killed / CHECKPOINT)[1]["progress"]["step"] == checkpoint_step
    final = resume(kind, config, killed)
    assert final["step"] == 50
    assert max_abs_difference(kind, straight, killed) <= 1e-6
    assert evaluations(killed) == evaluations(straight)
    # every eval_every steps, and at the end
    expected_steps = sorted({*range(checkpoints["eval_every"], 51, checkpoints["eval_every"]), 50})
    assert [r["step"] for r in evaluations(killed)] == expected_steps
    dev_key = "dev_bpc" if kind == "char" else "dev_ppl"
    assert all(torch.isfinite(torch.tensor(r[dev_key])) for r in evaluations(killed))


@pytest.mark.slow
def test_sigkill_between_an_evaluations_log_record_and_its_checkpoint(text_dir):  # noqa: F811
    """The log already holds step 30's evaluation, the checkpoint is step 20's: the resumed
    run drops the record and evaluates step 30 again, so the log is the straight run's."""
    config = KINDS["char"][2](
        text_dir / "train", text_dir / "dev.txt", max_steps=50, eval_every=10, checkpoint_minutes=0
    )
    straight, killed = text_dir / "straight", text_dir / "killed"
    pretrain("char", config, straight)
    run_killed("char", config, killed, "checkpoint", 30)
    assert read_tensor_file(killed / CHECKPOINT)[1]["progress"]["step"] == 20
    assert [r["step"] for r in evaluations(killed)] == [10, 20, 30]
    resume("char", config, killed)
    assert max_abs_difference("char", straight, killed) <= 1e-6
    assert evaluations(killed) == evaluations(straight)
    assert [r["step"] for r in evaluations(killed)] == [10, 20, 30, 40, 50]
