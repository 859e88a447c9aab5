"""LM pretraining under torchrun (spacy_lmcrf.pretrain.distributed): two gloo processes
on the CPU train as one process does on the same batches, resume from their checkpoint
(under torchrun or alone), write files a single process loads, and all stop when one
of them gets a signal."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, List, Optional

import pytest
import torch

from spacy_lmcrf.ml.modules.tensor_file import read_tensor_file
from spacy_lmcrf.pretrain.distributed import Ranks, launched_ranks, row_share
from spacy_lmcrf.pretrain.lm_training import CHECKPOINT, joined_states, state_share

from .test_char_lm_pretraining import read_log, text_dir  # noqa: F401 (text_dir: a fixture)
from .test_pretrain_checkpoints import KINDS, max_abs_difference, pretrain, resume

COMMANDS = {"char": "pretrain-char-lm", "word": "pretrain-word-lm"}
MEASURES = {"char": "bpc", "word": "ppl"}


def test_launched_ranks_reads_torchruns_environment():
    assert launched_ranks({}) == Ranks() and not Ranks().distributed
    assert launched_ranks({"WORLD_SIZE": "1", "RANK": "0"}) == Ranks()
    ranks = launched_ranks({"WORLD_SIZE": "4", "RANK": "5", "LOCAL_RANK": "1"})
    assert ranks == Ranks(5, 4, 1) and ranks.distributed and not ranks.is_main


@pytest.mark.parametrize("n_rows,world_size", [(100, 2), (100, 3), (4, 2), (1, 2), (3, 4)])
def test_row_shares_cover_the_batch_in_order(n_rows, world_size):
    shares = [row_share(n_rows, Ranks(rank, world_size)) for rank in range(world_size)]
    rows = [row for share in shares for row in range(n_rows)[share]]
    assert rows == list(range(n_rows))
    sizes = [share.stop - share.start for share in shares]
    assert max(sizes) - min(sizes) <= 1


def test_a_batch_state_split_by_rank_joins_back():
    state = (torch.randn(2, 5, 3), torch.randn(2, 5, 3))
    cpu = torch.device("cpu")
    shares = [state_share(state, Ranks(rank, 3), cpu) for rank in range(3)]
    assert [s[0].shape[1] for s in shares if s is not None] == [1, 2, 2]
    joined = joined_states(shares)
    assert joined is not None and all(torch.equal(a, b) for a, b in zip(joined, state))
    one_row = (torch.randn(1, 1, 3), torch.randn(1, 1, 3))
    assert state_share(one_row, Ranks(0, 2), cpu) is None  # rank 0's share of 1 row: none
    assert joined_states([None, None]) is None


def torchrun(kind: str, config_path: Path, output_dir: Path, *args: str) -> List[str]:
    """The command line that runs kind's pretraining in 2 processes on the CPU."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "spacy",
        "lmcrf",
        COMMANDS[kind],
        str(config_path),
        str(output_dir),
        *args,
    ]


def environment() -> dict:
    return {**os.environ, "OMP_NUM_THREADS": "1"}


def run_torchrun(kind: str, config_path: Path, output_dir: Path, *args: str) -> None:
    process = subprocess.run(
        torchrun(kind, config_path, output_dir, *args),
        env=environment(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert process.returncode == 0, process.stdout + process.stderr


def measures(output_dir: Path) -> List[dict]:
    """The evaluations' figures (train and dev measures, units counted)."""
    return [
        {k: v for k, v in record.items() if k not in ("seconds", "event")}
        for record in read_log(output_dir / "log.jsonl")
        if record["event"] == "evaluate"
    ]


def tiny_config_file(kind: str, text_dir: Path, dropout: float = 0.0, **training) -> tuple:  # noqa: F811
    """A tiny config and its file; without dropout (the default) two processes make the
    same updates as one (no dropout masks drawn per rank)."""
    config = KINDS[kind][2](text_dir / "train", text_dir / "dev.txt", **training)
    config["model"]["dropout"] = dropout
    path = text_dir / f"{kind}.cfg"
    config.to_disk(path)
    return config, path


def close(have: Any, want: Any, rel: float = 1e-5) -> bool:
    """Numbers within rel of each other, everything else equal (lists item by item)."""
    if isinstance(want, (list, tuple)) and isinstance(have, (list, tuple)):
        return len(have) == len(want) and all(close(h, w, rel) for h, w in zip(have, want))
    if isinstance(want, (int, float)) and not isinstance(want, bool):
        return have == pytest.approx(want, rel=rel)
    return have == want


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["char", "word"])
def test_two_processes_train_resume_and_save_as_one_process(text_dir, kind):  # noqa: F811
    config, config_path = tiny_config_file(kind, text_dir, max_steps=20, eval_every=10)
    until = {"training": {**config["training"], "max_steps": 30}}
    straight, ddp = text_dir / "straight", text_dir / "ddp"
    pretrain(kind, {**config, **until}, straight)
    run_torchrun(kind, config_path, ddp)
    assert read_tensor_file(ddp / CHECKPOINT)[1]["progress"]["step"] == 20
    run_torchrun(kind, config_path, ddp, "--resume", "--training.max_steps=30")
    # per-rank batch = batch_size / 2: each update is the single-process one
    assert max_abs_difference(kind, straight, ddp) <= 1e-5
    expected, got = measures(straight), measures(ddp)
    assert [r["step"] for r in got] == [10, 20, 30]
    for want, have in zip(expected, got):
        assert have.keys() == want.keys()
        for key, value in want.items():
            assert close(have[key], value), (key, have[key], value)
    measure = f"train_{MEASURES[kind]}_forward"
    assert got[-1][measure] < got[0][measure]  # the loss falls
    # the files load in one process, and one process goes on from the checkpoint
    tensors, _ = read_tensor_file(ddp / CHECKPOINT)
    assert not any(".module." in name or name.startswith("module.") for name in tensors)
    model_class, last_file = KINDS[kind][3:]
    model_class.load(ddp / last_file)
    further = {"training": {**config["training"], "max_steps": 35}}
    pretrain(kind, {**config, **further}, text_dir / "straight35")
    resume(kind, {**config, **further}, ddp)
    assert max_abs_difference(kind, text_dir / "straight35", ddp) <= 1e-5


@pytest.mark.slow
def test_two_processes_with_dropout_resume_exactly(text_dir):  # noqa: F811
    """Each rank's random state is in the checkpoint: stopped at step 20 and resumed,
    two processes with dropout reach the weights of two that went on."""
    _, config_path = tiny_config_file("char", text_dir, dropout=0.2, max_steps=30, eval_every=10)
    straight, resumed = text_dir / "straight", text_dir / "resumed"
    run_torchrun("char", config_path, straight)
    run_torchrun("char", config_path, resumed, "--training.max_steps=20")
    run_torchrun("char", config_path, resumed, "--resume")
    assert max_abs_difference("char", straight, resumed) <= 1e-6
    assert measures(resumed) == measures(straight)
    assert "rng.torch.rank1" in read_tensor_file(resumed / CHECKPOINT)[0]


def worker_pid(launcher_pid: int, rank: int) -> Optional[int]:
    """The pid of torchrun's worker of a rank (found through /proc), if it runs yet."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            parent = next(line for line in status.splitlines() if line.startswith("PPid:"))
            if int(parent.split()[1]) != launcher_pid:
                continue
            environ = (entry / "environ").read_bytes().split(b"\0")
        except (OSError, StopIteration):
            continue
        if f"RANK={rank}".encode() in environ:
            return int(entry.name)
    return None


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="finds workers in /proc")
@pytest.mark.parametrize("ctrl_c", [False, True], ids=["SIGTERM to rank 1", "Ctrl-C"])
def test_a_signal_stops_both_processes_with_a_checkpoint(text_dir, ctrl_c):  # noqa: F811
    """SIGTERM to rank 1 alone, or SIGINT to torchrun and its workers at once (Ctrl-C in
    a terminal, which torchrun forwards again): both ranks stop after the same step,
    the checkpoint is written, and it resumes."""
    config, config_path = tiny_config_file("char", text_dir, max_steps=0, eval_every=10)
    out = text_dir / "ddp"
    launcher = subprocess.Popen(
        torchrun("char", config_path, out, "--training.max_minutes=3"),
        env=environment(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, as a terminal's foreground job
    )
    try:
        deadline = time.monotonic() + 120
        log = out / "log.jsonl"
        while not (log.exists() and '"evaluate"' in log.read_text()):
            assert launcher.poll() is None and time.monotonic() < deadline, launcher.communicate()
            time.sleep(0.05)
        if ctrl_c:
            os.killpg(launcher.pid, signal.SIGINT)
        else:
            pid = worker_pid(launcher.pid, 1)
            assert pid is not None
            os.kill(pid, signal.SIGTERM)
        stdout, stderr = launcher.communicate(timeout=120)
    finally:
        launcher.kill()
    expected = "SIGINT" if ctrl_c else "SIGTERM"
    assert "aborted without a checkpoint" not in stderr, stderr
    end = read_log(out / "log.jsonl")[-1]
    assert end["event"] == "end" and end["signal"] == expected, stdout + stderr
    assert stdout.count(f"Stopped by {expected} at step {end['step']}") == 1  # rank 0 says it
    assert read_tensor_file(out / CHECKPOINT)[1]["progress"]["step"] == end["step"]
    until = {"training": {**config["training"], "max_steps": end["step"] + 3}}
    assert resume("char", {**config, **until}, out)["step"] == end["step"] + 3
