"""benchmarks/scripts/fuzz.py: the seeded fuzz run of the CRF span labelers, and its checks."""

import importlib
import json
import sys
from pathlib import Path

import numpy
import pytest
import spacy
from spacy.tokens import Doc, Span, SpanGroup

SCRIPTS = Path(__file__).parents[2] / "benchmarks" / "scripts"


def fuzz_script():
    """benchmarks/scripts/fuzz.py as a module (it imports its neighbour common.py)."""
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    return importlib.import_module("fuzz")


@pytest.mark.slow
def test_fuzz_main_reports_no_failure(tmp_path, capsys):
    """A tiny run, the default pipeline trained for a few steps: every check passes."""
    fuzz = fuzz_script()
    out = tmp_path / "fuzz.json"
    code = fuzz.main(
        [
            "--work-dir",
            str(tmp_path / "work"),
            "--train-steps",
            "3",
            "--n-docs",
            "50",
            "--batch-size",
            "16",
            "--batch-sample",
            "10",
            "--seed",
            "1",
            "--out",
            str(out),
        ]
    )
    result = json.loads(out.read_text())
    assert code == 0, result["examples"]
    assert result["docs"] == 50 and result["batch_docs"] == 10 and result["passed"]
    assert result["pipeline"] == ["lm_crf_ner", "lm_crf_spans"]
    assert result["checks"] and not any(result["checks"].values()) and not result["exceptions"]
    assert {"commit", "cpu", "date", "command"} <= set(result)
    table = capsys.readouterr().out
    assert "| docs | 50 |" in table and "| failures: lm_crf_ner: no overlap | 0 |" in table
    assert (tmp_path / "work" / "lmcrf_ner_chunks_steps3" / "config.cfg").exists()


def test_generator_is_seeded_and_covers_every_kind():
    fuzz = fuzz_script()
    sentences = fuzz.load_sample_sentences()
    first = fuzz.Generator(3, sentences).cases(400)
    again = fuzz.Generator(3, sentences).cases(400)
    assert [c.describe() for c in first] == [c.describe() for c in again]
    assert [c.describe() for c in fuzz.Generator(4, sentences).cases(20)] != [
        c.describe() for c in first[:20]
    ]
    assert {c.kind for c in first} == {kind for kind, _ in fuzz.Generator(0, sentences).kinds}
    nlp = spacy.blank("en")
    for case in first[:100]:  # spaCy's tokenizer is slow on the long tokens
        doc = fuzz.make_doc(nlp, case)
        assert all(len(t.text) <= fuzz.MAX_TOKEN_CHARS for t in doc)
        if case.words is not None:
            assert all(case.words) and [t.text for t in doc] == case.words
        if case.sents and len(doc) > 1:
            assert doc.has_annotation("SENT_START") and doc[0].is_sent_start
        elif len(doc) > 1:
            assert not doc.has_annotation("SENT_START")


def test_checks_catch_broken_annotations():
    """The checks are not vacuous: a doc with every fault fails every check."""
    fuzz = fuzz_script()
    nlp = spacy.blank("en")
    doc = Doc(nlp.vocab, words=["Peter", " ", "lives", "in", "Berlin"])
    doc.set_ents([Span(doc, 4, 5, "LOC")], default="unmodified")  # tokens 0-3 keep no IOB
    group = SpanGroup(doc, name="ner", spans=[Span(doc, 0, 2, "PER"), Span(doc, 1, 3, "PER")])
    group.attrs["scores"] = numpy.asarray([float("nan"), 1.5])
    doc.spans["ner"] = group
    chunks = SpanGroup(doc, name="chunks", spans=[Span(doc, 0, 1, "NP")])
    doc.spans["chunks"] = chunks  # no scores
    components = [("ner", "lm_crf_ner", "ner"), ("chunker", "lm_crf_spans", "chunks")]
    failed = {check for check, _ in fuzz.check_doc(doc, components)}
    assert failed == {
        "ner: no overlap",
        "ner: scores finite in [0, 1]",
        "ner: no whitespace in span",
        "ner: spans == ents",
        "ner: every token annotated",
        "chunker: one score per span",
    }
    assert failed <= set(fuzz.check_names(components))
    del doc.spans["chunks"]
    assert ("chunker: spans written", "doc.spans has no 'chunks'") in fuzz.check_doc(
        doc, components
    )


def test_compare_finds_batch_differences():
    fuzz = fuzz_script()
    nlp = spacy.blank("en")
    components = [("ner", "lm_crf_ner", "ner")]
    docs = []
    for score in (0.5, 0.5 + 1e-3):
        doc = Doc(nlp.vocab, words=["Peter", "lives"], ents=["B-PER", "O"])
        doc.spans["ner"] = SpanGroup(doc, name="ner", spans=list(doc.ents))
        doc.spans["ner"].attrs["scores"] = numpy.asarray([score])
        docs.append(doc)
    batch, alone = (fuzz.annotations(doc, components) for doc in docs)
    differ, diff = fuzz.compare(batch, alone)
    assert differ == [] and abs(diff - 1e-3) < 1e-9
    docs[1].set_ents([], default="outside")
    differ, _ = fuzz.compare(batch, fuzz.annotations(docs[1], components))
    assert differ == ["iob", "ents"]
