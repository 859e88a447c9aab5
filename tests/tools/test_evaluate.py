"""spacy_lmcrf.evaluate: predictions on the gold tokens, conlleval file and metrics, agreement
with spaCy's Scorer, for each kind (ner, spans, tags)."""

import json

import pytest
import spacy
from spacy.cli._util import app
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from typer.testing import CliRunner

import spacy_lmcrf.cli  # noqa: F401 (adds `lmcrf` to spaCy's app, as the entry point does)
from spacy_lmcrf.conlleval import read_conlleval
from spacy_lmcrf.evaluate import disagreements, evaluate, main, render_displacy
from spacy_lmcrf.tags import tags_to_spans

from ..util import TINY_TOK2VEC, ner_examples

TAGGED_CHUNKS = [
    (
        "He reckons the deficit will narrow",
        ["PRP", "VBZ", "DT", "NN", "MD", "VB"],
        [(0, 1, "NP"), (1, 2, "VP"), (2, 4, "NP"), (4, 6, "VP")],
    ),
    ("The dog barked", ["DT", "NN", "VBD"], [(0, 2, "NP"), (2, 3, "VP")]),
    ("Prices rose", ["NNS", "VBD"], [(0, 1, "NP"), (1, 2, "VP")]),
]


def _save(nlp, docs, tmp_path):
    nlp.initialize(lambda: [Example(nlp.make_doc(doc.text), doc) for doc in docs])
    nlp.to_disk(tmp_path / "model")
    data = tmp_path / "data.spacy"
    DocBin(docs=docs).to_disk(data)
    return tmp_path / "model", data


@pytest.fixture(scope="module")
def ner_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ner")
    nlp = spacy.blank("en")
    nlp.add_pipe("lm_crf_ner", config={"model": {"tok2vec": TINY_TOK2VEC}})
    return _save(nlp, [eg.reference for eg in ner_examples(nlp)], tmp)


@pytest.fixture(scope="module")
def tags_and_chunks_model(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tags")
    nlp = spacy.blank("en")
    nlp.add_pipe("lm_crf_tagger", config={"model": {"tok2vec": TINY_TOK2VEC}})
    nlp.add_pipe("lm_crf_spans", config={"spans_key": "chunks", "model": {"tok2vec": TINY_TOK2VEC}})
    docs = []
    for text, tags, chunks in TAGGED_CHUNKS:
        doc = Doc(nlp.vocab, words=text.split(), tags=tags)
        doc.spans["chunks"] = [Span(doc, s, e, label=label) for s, e, label in chunks]
        docs.append(doc)
    return _save(nlp, docs, tmp)


def test_ner(tmp_path, ner_model):
    model, data = ner_model
    result = evaluate(model, data, tmp_path / "preds.txt", kind="ner")
    assert result["spacy_scorer_agrees"], result["disagreements"]
    assert result["docs"] == 4 and result["tokens"] == 28
    assert result["gold"] == 9
    sentences = read_conlleval(tmp_path / "preds.txt")
    assert sentences[0].tokens == ["Peter", "Blackburn", "lives", "in", "Berlin", "."]
    assert sentences[0].gold == ["B-PER", "I-PER", "O", "O", "B-LOC", "O"]
    assert result["f1"] == pytest.approx(result["spacy_scorer"]["f1"])


def test_spans_and_tags(tmp_path, tags_and_chunks_model):
    model, data = tags_and_chunks_model
    spans = evaluate(model, data, tmp_path / "chunks.txt", kind="spans", spans_key="chunks")
    assert spans["spacy_scorer_agrees"], spans["disagreements"]
    assert spans["gold"] == 8
    tags = evaluate(model, data, tmp_path / "tags.txt", kind="tags")
    assert tags["spacy_scorer_agrees"], tags["disagreements"]
    assert tags["tokens"] == 11 and "f1" not in tags
    assert tags["accuracy"] == pytest.approx(tags["spacy_scorer"]["accuracy"])
    assert read_conlleval(tmp_path / "tags.txt")[1].gold == ["DT", "NN", "VBD"]


def test_cli_writes_json_and_report(tmp_path, ner_model, capsys):
    model, data = ner_model
    out = tmp_path / "m" / "metrics.json"
    code = main(
        [str(model), str(data), "--output", str(out), "--conll-output", str(tmp_path / "p.txt")]
    )
    assert code == 0
    metrics = json.loads(out.read_text())
    assert capsys.readouterr().out == metrics["report"]
    assert metrics["report"].startswith("processed 28 tokens with 9 phrases;")


def test_cli_error_on_wrong_spans_key(tmp_path, tags_and_chunks_model, capsys):
    model, data = tags_and_chunks_model
    code = main(
        [
            str(model),
            str(data),
            "--output",
            str(tmp_path / "m.json"),
            "--conll-output",
            str(tmp_path / "p.txt"),
            "--kind",
            "spans",
            "--spans-key",
            "nope",
        ]
    )
    assert code == 1
    assert "doc.spans['nope']" in capsys.readouterr().err


def test_spacy_lmcrf_evaluate_draws_the_predicted_entities(tmp_path, ner_model):
    """`spacy lmcrf evaluate --displacy-path`: entities.html holds every predicted entity's
    label (spaCy's own --displacy-path draws nothing for lm_crf_ner)."""
    model, data = ner_model
    preds, html_dir = tmp_path / "p.txt", tmp_path / "html"
    args = [str(model), str(data), "--output", str(tmp_path / "m.json"), "--conll-output"]
    result = CliRunner().invoke(
        app,
        ["lmcrf", "evaluate", *args, str(preds), "--displacy-path", str(html_dir)]
        + ["--displacy-limit", "2"],
    )
    assert result.exit_code == 0, result.output
    page = html_dir / "entities.html"
    assert result.stdout.endswith(f"displaCy HTML of 2 docs -> {page}\n")
    labels = {
        label
        for sentence in read_conlleval(preds)[:2]
        for _, _, label in tags_to_spans(sentence.pred, "IOB2")
    }
    html = page.read_text(encoding="utf8")
    assert labels and all(f">{label}</span>" in html for label in labels)
    assert "Peter" in html and "Angela" not in html  # the first two docs only
    assert json.loads((tmp_path / "m.json").read_text())["displacy_html"] == str(page)


def test_render_displacy_spans_and_no_view_of_tags(tmp_path, tags_and_chunks_model):
    _, data = tags_and_chunks_model
    docs = list(DocBin().from_disk(data).get_docs(spacy.blank("en").vocab))
    page = render_displacy(docs, "spans", "chunks", tmp_path / "html")
    assert page == tmp_path / "html" / "spans.html"
    assert all(label in page.read_text(encoding="utf8") for label in ("NP", "VP"))
    with pytest.raises(ValueError, match="no view of --kind tags"):
        render_displacy(docs, "tags", "chunks", tmp_path / "html")


def test_disagreements_are_reported():
    ours = {
        "precision": 50.0,
        "recall": 40.0,
        "f1": 44.4,
        "per_type": {"A": {"precision": 50.0, "recall": 40.0, "f1": 44.4}},
    }
    theirs = {
        "precision": 50.0,
        "recall": 40.0,
        "f1": 44.5,
        "per_type": {"B": {"precision": 1.0, "recall": 1.0, "f1": 1.0}},
    }
    found = disagreements(ours, theirs, "ner")
    assert any(f.startswith("f1:") for f in found)
    assert "A: scored by only one of them" in found and "B: scored by only one of them" in found
    assert disagreements(ours, ours, "ner") == []
