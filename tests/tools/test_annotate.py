"""spacy lmcrf annotate: entities with their probabilities, and a displaCy page."""

import json

import pytest
import typer
from typer.testing import CliRunner

from spacy_lmcrf.annotate import annotate, annotate_cli, read_texts, scored_spans

from ..util import convert_ner_sample, make_nlp, ner_examples, train


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    nlp = make_nlp("lm_crf_ner")
    train(nlp, ner_examples(nlp), 30)
    path = tmp_path_factory.mktemp("annotate") / "model"
    nlp.to_disk(path)
    return path


def _run(*args):
    app = typer.Typer()
    app.command()(annotate_cli)
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.slow
def test_annotate_prints_probabilities_and_writes_displacy(model_dir, tmp_path):
    texts = tmp_path / "texts.jsonl"
    texts.write_text(json.dumps({"text": "Angela Merkel met Emmanuel Macron in Paris"}) + "\n")
    out = tmp_path / "out"
    result = _run(
        model_dir, "Peter Blackburn lives in Berlin .", "--input", texts, "--displacy-path", out
    )
    assert result.exit_code == 0, result.output
    assert "Peter Blackburn" in result.output and "PER" in result.output
    html = out / "entities.html"
    page = html.read_text()
    assert "Peter Blackburn" in page and "PER" in page and "Paris" in page
    assert str(html) in result.output


@pytest.mark.slow
def test_annotate_rows_match_the_doc(model_dir):
    import spacy

    nlp = spacy.load(model_dir)
    docs, found = annotate(nlp, ["Peter Blackburn lives in Berlin ."])
    ((key, rows),) = found[0]
    assert key == "lm_crf_ner"
    assert [(text, label) for text, label, _ in rows] == [(e.text, e.label_) for e in docs[0].ents]
    assert rows == scored_spans(docs[0], key)
    assert all(0.0 <= p <= 1.0 for _, _, p in rows)


def test_read_texts_and_clear_errors(tmp_path):
    plain = tmp_path / "t.txt"
    plain.write_text("one text\n\n two \n")
    assert read_texts(plain) == ["one text", "two"]
    bad = tmp_path / "t.jsonl"
    bad.write_text('{"text": "ok"}\n{"body": "no text"}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_texts(bad)
    with pytest.raises(ValueError, match="no such file"):
        read_texts(tmp_path / "missing.txt")
    result = _run(tmp_path / "no-model")
    assert result.exit_code == 1 and "Nothing to annotate" in result.output
    result = _run(tmp_path / "no-model", "text")
    assert result.exit_code == 1 and "Cannot load the pipeline" in result.output


@pytest.mark.slow
def test_evaluate_prints_the_report_without_output_files(model_dir, tmp_path):
    """The README's step 5: `spacy lmcrf evaluate MODEL DATA` alone prints the report."""
    from spacy.cli._util import app

    import spacy_lmcrf.cli  # noqa: F401 (adds `lmcrf` to spaCy's app, as its entry point does)

    dev = convert_ner_sample(tmp_path) / "sample_dev.spacy"
    result = CliRunner().invoke(app, ["lmcrf", "evaluate", str(model_dir), str(dev)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("processed 1350 tokens with")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample_dev.spacy", "sample_train.spacy"]
