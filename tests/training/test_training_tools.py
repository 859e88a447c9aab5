"""The timed logger, the budget callback and the gold-token corpus reader, through `spacy train`
where it matters (entry points only, no --code)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import spacy
from spacy.tokens import Doc, DocBin, Span
from spacy.util import registry

from spacy_lmcrf.training import callbacks
from spacy_lmcrf.training.callbacks import TrainingBudgetSpent, stop_after_minutes

from ..util import ROOT, convert_ner_sample

TINY = {"char_dim": 8, "char_hidden": 16, "width": 16, "min_freq": 1}
# One thread: on a machine whose cores are busy elsewhere, OpenMP threads wait on each other.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def tiny_cli(component: str = "lm_crf_ner"):
    args = []
    for key, value in TINY.items():
        args += [f"--components.{component}.model.tok2vec.{key}", str(value)]
    return args


@pytest.fixture(scope="module")
def sample_corpus(tmp_path_factory):
    return convert_ner_sample(tmp_path_factory.mktemp("corpus"), prefix="")


@pytest.mark.slow
def test_timed_logger_in_spacy_train(tmp_path, sample_corpus):
    log = tmp_path / "logs" / "log.jsonl"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "spacy",
            "train",
            str(ROOT / "configs" / "lmcrf_ner.cfg"),
            "--output",
            str(tmp_path / "out"),
            "--paths.train",
            str(sample_corpus / "train.spacy"),
            "--paths.dev",
            str(sample_corpus / "dev.spacy"),
            "--corpora.dev.limit",
            "20",
            "--training.max_steps",
            "6",
            "--training.eval_frequency",
            "2",
            "--training.logger.@loggers",
            "spacy_lmcrf.TimedLogger.v1",
            "--training.logger.path",
            str(log),
            *tiny_cli(),
        ],
        capture_output=True,
        text=True,
        env=ENV,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "ENTS_F" in result.stdout  # the console table still prints
    records = [json.loads(line) for line in log.read_text().splitlines()]
    evaluations, end = records[:-1], records[-1]
    assert [r["event"] for r in evaluations] == ["evaluate"] * 4
    assert [r["step"] for r in evaluations] == [0, 2, 4, 6]
    seconds = [r["seconds"] for r in evaluations]
    assert seconds == sorted(seconds) and seconds[0] > 0
    assert end == {"event": "end", "seconds": end["seconds"], "steps": 7}
    assert end["seconds"] >= seconds[-1]
    for record in evaluations:
        assert 0 <= record["score"] <= 1
        assert {"ents_f", "ents_p", "ents_r", "ents_per_type"} <= set(record["scores"])
        assert {"lm_crf_ner", "lm_crf_ner_lm"} <= set(record["losses"])
        assert record["words"] > 0 and isinstance(record["is_best"], bool)
    assert evaluations[0]["is_best"]


def test_stop_after_minutes(monkeypatch, capsys):
    now = [100.0]
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: now[0])
    before_update = registry.callbacks.get("spacy_lmcrf.stop_after_minutes.v1")(minutes=0.5)
    nlp = spacy.blank("en")
    before_update(nlp, {"step": 0, "epoch": 0})  # starts the clock
    now[0] += 29.9
    before_update(nlp, {"step": 1, "epoch": 0})
    now[0] += 0.1
    with pytest.raises(TrainingBudgetSpent) as info:
        before_update(nlp, {"step": 2, "epoch": 1})
    assert isinstance(info.value, SystemExit) and info.value.code == 0
    assert "0.5-minute budget is spent (step 2, epoch 1" in capsys.readouterr().out
    with pytest.raises(ValueError, match="minutes must be > 0"):
        stop_after_minutes(0)


def _chunk_docbin(path: Path) -> None:
    nlp = spacy.blank("en")
    doc = Doc(
        nlp.vocab,
        words=["all-rounder", "Phil", "won", "1996-08-30"],
        sent_starts=[True, False, False, False],
    )
    doc.spans["chunks"] = [Span(doc, 0, 2, "NP"), Span(doc, 2, 3, "VP")]
    doc.set_ents([Span(doc, 1, 2, "PER")], default="outside")
    DocBin(docs=[doc]).to_disk(path)


def test_gold_token_corpus_keeps_tokens_and_span_groups(tmp_path):
    _chunk_docbin(tmp_path / "d.spacy")
    reader = registry.readers.get("spacy_lmcrf.GoldTokenCorpus.v1")(tmp_path / "d.spacy")
    nlp = spacy.blank("en")
    (example,) = list(reader(nlp))
    assert [t.text for t in example.predicted] == ["all-rounder", "Phil", "won", "1996-08-30"]
    assert [t.text for t in nlp.make_doc(example.reference.text)] != [
        t.text for t in example.predicted
    ]
    assert [(s.start, s.end, s.label_) for s in example.reference.spans["chunks"]] == [
        (0, 2, "NP"),
        (2, 3, "VP"),
    ]
    assert [(e.start, e.end, e.label_) for e in example.reference.ents] == [(1, 2, "PER")]
    assert not example.predicted.has_annotation("ENT_IOB")


@pytest.mark.parametrize("setting", [{"gold_preproc": True}, {"max_length": 10}, {}])
def test_gold_token_corpus_refuses_what_would_drop_spans(tmp_path, setting):
    create = registry.readers.get("spacy_lmcrf.GoldTokenCorpus.v1")
    if not setting:
        with pytest.raises(ValueError, match="path is null"):
            create(None)
        return
    with pytest.raises(ValueError, match="gold_preproc must be false and max_length 0"):
        create(tmp_path, **setting)
