"""Pretraining character LMs on raw text (`spacy lmcrf pretrain-char-lm`): streaming,
vocabulary, the loss falls, checkpoints resume exactly, files load without unpickling."""

import gzip
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy
import pytest
import srsly
import torch
from thinc.api import Config

from spacy_lmcrf.ml.modules.char_lm import BiCharLM
from spacy_lmcrf.ml.modules.char_vocab import CharVocab
from spacy_lmcrf.ml.modules.tensor_file import (
    read_tensor_file,
    tensors_from_bytes,
    write_tensor_file,
)
from spacy_lmcrf.pretrain.char_lm_training import pretrain_char_lm
from spacy_lmcrf.pretrain.lm_training import interleaved_splits, rows_of, windows
from spacy_lmcrf.pretrain.text import read_chunks, read_lines, text_files

from ..util import ROOT

SUBJECTS = ["the cat", "a dog", "my old friend", "the president", "Anna", "the committee"]
VERBS = ["sees", "likes", "visited", "will meet", "thanked"]
OBJECTS = [
    "the garden .",
    "Washington in May .",
    "a small house .",
    "the river ,",
    "her 3 sisters .",
]


def sentences(n: int, seed: int = 0):
    rng = numpy.random.default_rng(seed)
    return [
        f"{SUBJECTS[rng.integers(len(SUBJECTS))]} {VERBS[rng.integers(len(VERBS))]} "
        f"{OBJECTS[rng.integers(len(OBJECTS))]}"
        for _ in range(n)
    ]


@pytest.fixture
def text_dir(tmp_path):
    (tmp_path / "train").mkdir()
    (tmp_path / "train" / "a.txt").write_text("\n".join(sentences(200, 0)) + "\n", encoding="utf8")
    with gzip.open(tmp_path / "train" / "b.txt.gz", "wt", encoding="utf8") as file_:
        file_.write("\n".join(sentences(150, 1)) + "\n")
    (tmp_path / "dev.txt").write_text("\n".join(sentences(40, 2)) + "\n", encoding="utf8")
    return tmp_path


def tiny_config(train, dev=None, **training):
    return Config(
        {
            "system": {"seed": 0},
            "model": {"embedding_size": 8, "hidden_size": 24, "num_layers": 1, "dropout": 0.1},
            "corpus": {
                "train": str(train),
                "dev": str(dev) if dev else None,
                "char_coverage": 1.0,
                "dev_max_chars": 0,
            },
            "training": {
                "bptt": 20,
                "batch_size": 4,
                "learn_rate": 5.0,
                "grad_clip": 0.25,
                "split_windows": 5,
                "eval_every": 20,
                "max_steps": 60,
                **training,
            },
        }
    )


def read_log(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def test_text_files_reads_directories_gzip_and_lists(text_dir):
    files = text_files(text_dir / "train")
    assert [f.name for f in files] == ["a.txt", "b.txt.gz"]
    assert text_files(f"{text_dir / 'dev.txt'},{text_dir / 'train'}")[0].name == "dev.txt"
    lines = list(read_lines(files))
    assert len(lines) == 350 and all(line.endswith("\n") for line in lines)
    with pytest.raises(FileNotFoundError, match="nope"):
        text_files(text_dir / "nope")


def test_read_chunks_yields_every_character_once(text_dir):
    files = text_files(text_dir / "train")
    text = "".join(read_lines(files))
    chunks = list(read_chunks(files, 97))
    assert "".join(chunks) == text
    assert all(len(c) == 97 for c in chunks[:-1]) and 0 < len(chunks[-1]) <= 97


def corpus_files(tmp_path, sizes):
    (tmp_path / "text").mkdir()
    files = []
    for name, n_lines in zip("abcdefgh", sizes):
        path = tmp_path / "text" / f"{name}.txt"
        path.write_text("".join(f"{name * 9}\n" for _ in range(n_lines)), encoding="utf8")
        files.append(path)
    return files


def test_interleaved_splits_mix_the_files_and_keep_every_character(tmp_path):
    files = corpus_files(tmp_path, [300, 100])
    splits = list(interleaved_splits(read_chunks, files, 50, seed="0:0"))
    for path in files:
        own = [s for s in splits if s[0] == path.name[0]]
        assert "".join(own) == path.read_text(encoding="utf8")  # each file whole, in its order
    assert all(len(set(s)) == 2 for s in splits)  # a split never straddles two files
    first_half = "".join(splits[: len(splits) // 2])
    assert "a" in first_half and "b" in first_half  # the small file is not left to the end
    assert splits == list(interleaved_splits(read_chunks, files, 50, seed="0:0"))
    assert splits != list(interleaved_splits(read_chunks, files, 50, seed="0:1"))


def test_interleaved_splits_bound_the_open_files(tmp_path):
    files = corpus_files(tmp_path, [20, 30, 10, 40, 25])
    splits = list(interleaved_splits(read_chunks, files, 30, seed=3, max_open=2))
    assert sorted("".join(splits)) == sorted("".join(p.read_text(encoding="utf8") for p in files))


def test_interleave_files_can_be_switched_off_and_is_checked(tmp_path):
    corpus_files(tmp_path, [60, 60])
    record = pretrain_char_lm(
        tiny_config(tmp_path / "text", None, max_steps=3, interleave_files=False),
        tmp_path / "out",
        show_progress=False,
    )
    assert record["step"] == 3
    with pytest.raises(ValueError, match="interleave_files must be true or false"):
        pretrain_char_lm(
            tiny_config(tmp_path / "text", None, interleave_files="yes"),
            tmp_path / "out2",
            show_progress=False,
        )


def test_not_utf8_is_an_error_naming_file_and_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("fine\ncaf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1.txt, line 2: not UTF-8"):
        list(read_lines([path]))


def test_char_vocab_coverage_and_unknown():
    counts = Counter({"a": 600, "b": 300, "c": 99, "z": 1})
    vocab = CharVocab.from_counts(counts, coverage=0.99)
    assert vocab.chars == ["a", "b", "c"]
    assert list(vocab.encode("abz")) == [1, 2, 0]
    assert vocab.decode([1, 0]) == "a<unk>"
    assert CharVocab.from_counts(counts, coverage=1.0).chars == ["a", "b", "c", "z"]
    with pytest.raises(ValueError, match="empty"):
        CharVocab.from_counts(Counter())


def test_rows_keep_every_character():
    ids = numpy.arange(23)
    blocks = rows_of(ids, 4)
    assert sum(b.size for b in blocks) == 23
    assert blocks[0].shape == (4, 5) and blocks[1].tolist() == [[20, 21, 22]]
    assert windows(5, 3) == [(0, 3), (3, 4)]


def test_loss_falls_and_files_are_written(text_dir):
    out = text_dir / "out"
    final = pretrain_char_lm(
        tiny_config(text_dir / "train", text_dir / "dev.txt"), out, show_progress=False
    )
    evals = [r for r in read_log(out / "log.jsonl") if r["event"] == "evaluate"]
    assert [r["step"] for r in evals] == [20, 40, 60]
    assert evals[-1]["dev_bpc"] < evals[0]["dev_bpc"] - 0.3
    assert evals[-1]["train_bpc_forward"] < evals[0]["train_bpc_forward"]
    assert final["reason"] == "max_steps (60)"
    lms = BiCharLM.load(out / "char_lm.msgpack")
    assert lms.hidden_size == 24 and "W" in lms.vocab.chars
    assert lms.training_info["step"] == 60


def test_a_fresh_lm_scores_about_log2_of_the_vocabulary(text_dir):
    out = text_dir / "out"
    record = pretrain_char_lm(
        tiny_config(text_dir / "train", text_dir / "dev.txt", max_steps=1, learn_rate=0.0),
        out,
        show_progress=False,
    )
    n_chars = len(BiCharLM.load(out / "char_lm.msgpack").vocab)
    assert abs(record["dev_bpc"] - numpy.log2(n_chars)) < 0.5


def test_resume_continues_exactly(text_dir):
    straight, halves = text_dir / "straight", text_dir / "halves"
    config = tiny_config(text_dir / "train", text_dir / "dev.txt", max_steps=50)
    pretrain_char_lm(config, straight, show_progress=False)
    pretrain_char_lm(
        tiny_config(text_dir / "train", text_dir / "dev.txt", max_steps=27),
        halves,
        show_progress=False,
    )
    with pytest.raises(FileExistsError, match="--resume"):
        pretrain_char_lm(config, halves, show_progress=False)
    changed = tiny_config(text_dir / "train", text_dir / "dev.txt", max_steps=50, bptt=10)
    with pytest.raises(ValueError, match="differs from the checkpoint"):
        pretrain_char_lm(changed, halves, resume=True, show_progress=False)
    pretrain_char_lm(config, halves, resume=True, show_progress=False)
    a = BiCharLM.load(straight / "char_lm-last.msgpack").state_dict()
    b = BiCharLM.load(halves / "char_lm-last.msgpack").state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert read_log(halves / "log.jsonl")[-1]["step"] == 50


def test_epochs_cover_the_text_and_no_dev_keeps_the_last_model(text_dir):
    out = text_dir / "out"
    record = pretrain_char_lm(
        tiny_config(text_dir / "train", None, max_steps=0, max_epochs=1), out, show_progress=False
    )
    assert record["reason"] == "max_epochs (1)"
    files = text_files(text_dir / "train")
    # every character is an input except the last one of each row (it is only a target)
    # each file is cut into its own splits (interleave_files), so count file by file
    expected = sum(
        block.shape[0] * (block.shape[1] - 1)
        for path in files
        for chunk in read_chunks([path], 4 * (20 * 5 + 1))
        for block in rows_of(numpy.arange(len(chunk)), 4)
    )
    assert record["train_chars"] == expected
    assert expected > 0.95 * len("".join(read_lines(files)))
    assert (out / "char_lm.msgpack").exists()


def test_tensor_files_never_unpickle(tmp_path):
    path = tmp_path / "t.msgpack"
    write_tensor_file(path, {"w": torch.arange(6, dtype=torch.float32).view(2, 3)}, {"kind": "x"})
    tensors, meta = read_tensor_file(path)
    assert tensors["w"].tolist() == [[0, 1, 2], [3, 4, 5]] and meta == {"kind": "x"}
    bad = srsly.msgpack_dumps(
        {
            "format": "spacy_lmcrf.tensors.v1",
            "meta": {},
            "tensors": {"w": {"dtype": "object", "shape": [1], "data": b"cos\nsystem\n"}},
        }
    )
    with pytest.raises(ValueError, match="unsupported dtype 'object'"):
        tensors_from_bytes(bad)
    with pytest.raises(ValueError, match="not a spacy_lmcrf tensor file"):
        tensors_from_bytes(b"\x80\x04\x95")
    with pytest.raises(ValueError, match="not a character LM"):
        BiCharLM.load(path)


@pytest.mark.slow
def test_cli_through_spacy_entry_point(text_dir):
    config_path = ROOT / "configs" / "charlm_en.cfg"
    out = text_dir / "cli_out"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "spacy",
            "lmcrf",
            "pretrain-char-lm",
            str(config_path),
            str(out),
            "--paths.train",
            str(text_dir / "train"),
            "--paths.dev",
            str(text_dir / "dev.txt"),
            "--model.hidden_size",
            "16",
            "--model.embedding_size",
            "8",
            "--training.batch_size",
            "4",
            "--training.bptt",
            "16",
            "--training.max_steps",
            "6",
            "--training.eval_every",
            "3",
        ],
        capture_output=True,
        text=True,
        cwd=text_dir,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert BiCharLM.load(out / "char_lm.msgpack").hidden_size == 16
    resumed = subprocess.run(
        [
            sys.executable,
            "-m",
            "spacy",
            "lmcrf",
            "pretrain-char-lm",
            str(config_path),
            str(out),
            "--resume",
            "--paths.train",
            str(text_dir / "train"),
            "--paths.dev",
            str(text_dir / "dev.txt"),
            "--model.hidden_size",
            "16",
            "--model.embedding_size",
            "8",
            "--training.batch_size",
            "4",
            "--training.bptt",
            "16",
            "--training.max_steps",
            "9",
            "--training.eval_every",
            "3",
        ],
        capture_output=True,
        text=True,
        cwd=text_dir,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert read_log(out / "log.jsonl")[-1]["step"] == 9


def test_hold_out_last_lines(text_dir):
    from spacy_lmcrf.pretrain.text import hold_out_last_lines

    source = text_dir / "dev.txt"
    assert hold_out_last_lines(source, text_dir / "t.txt", text_dir / "d.txt", 10) == (30, 10)
    lines = source.read_text().splitlines(keepends=True)
    assert (text_dir / "t.txt").read_text() == "".join(lines[:30])
    assert (text_dir / "d.txt").read_text() == "".join(lines[30:])
    with pytest.raises(ValueError, match="cannot hold out 40"):
        hold_out_last_lines(source, text_dir / "t.txt", text_dir / "d.txt", 40)
