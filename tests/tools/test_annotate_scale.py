"""spacy lmcrf annotate at scale: shards in (text, JSONL, DocBin), JSONL and DocBin out, as
a stream in input order, locally (nlp.pipe) or on Ray Data with a pool of actors."""

import importlib.util
import json
import os
import sys
from pathlib import Path

import pytest
import spacy
import typer
from spacy.tokens import DocBin
from spacy.vocab import Vocab
from typer.testing import CliRunner

from spacy_lmcrf.annotate import (
    PipelineAnnotator,
    annotate_cli,
    annotate_shards_on_ray,
    find_shards,
    read_shard,
)

from ..util import NER_DATA, make_nlp, ner_examples, train

HAS_RAY = importlib.util.find_spec("ray") is not None
requires_ray = pytest.mark.skipif(
    not HAS_RAY, reason='needs Ray Data: pip install "spacy-lmcrf[ray]" (the test extra has it)'
)
BATCH_SIZE = 4
KEY = "lm_crf_ner"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    nlp = make_nlp("lm_crf_ner")
    train(nlp, ner_examples(nlp), 30)
    path = tmp_path_factory.mktemp("annotate_scale") / "model"
    nlp.to_disk(path)
    return path


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    """Two JSONL shards of eight records each (a multiple of BATCH_SIZE, so that every
    engine batches the same texts together), with metadata of different shapes."""
    directory = tmp_path_factory.mktemp("shards")
    texts = [text for text, _ in NER_DATA] + [
        "Blackburn met Macron in Berlin",
        "Nothing here",
        "The Commission said on Thursday",
        "Merkel lives in Paris",
    ]
    for shard in range(2):
        with (directory / f"part-{shard}.jsonl").open("w") as file:
            for i, text in enumerate(texts):
                meta = {"id": f"{shard}-{i}"} if i % 2 else {"id": i, "tags": ["x", shard]}
                file.write(json.dumps({"text": text, **meta}) + "\n")
    return directory


@pytest.fixture(scope="module")
def ray_local():
    import ray

    ray.init(num_cpus=2, include_dashboard=False, logging_level="WARNING")
    yield ray
    ray.shutdown()


def _run(*args):
    app = typer.Typer()
    app.command()(annotate_cli)
    return CliRunner().invoke(app, [str(a) for a in args])


def _read_jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def _expected_records(model_dir, shards):
    """What nlp.pipe gives for the shards' records, as annotate's JSONL records."""
    nlp = spacy.load(model_dir)
    inputs = [(shard, json.loads(line)) for shard in shards for line in shard.open()]
    docs = nlp.pipe([record["text"] for _, record in inputs], batch_size=BATCH_SIZE)
    expected, index = [], {}
    for (shard, record), doc in zip(inputs, docs):
        index[shard] = index.get(shard, -1) + 1
        scores = doc.spans[KEY].attrs["scores"]
        spans = [
            {
                "start": ent.start_char,
                "end": ent.end_char,
                "label": ent.label_,
                "text": ent.text,
                "probability": float(p),
            }
            for ent, p in zip(doc.ents, scores)
        ]
        meta = {k: v for k, v in record.items() if k != "text"}
        expected.append(
            {
                "source": str(shard),
                "index": index[shard],
                "text": record["text"],
                "meta": meta,
                "spans": {KEY: spans},
            }
        )
    return expected


@pytest.mark.slow
def test_local_engine_matches_nlp_pipe_and_keeps_metadata(model_dir, shard_dir, tmp_path):
    out_jsonl, out_docs = tmp_path / "out.jsonl", tmp_path / "docs"
    glob = shard_dir / "part-*.jsonl"
    result = _run(
        model_dir,
        "--input",
        glob,
        "--output-jsonl",
        out_jsonl,
        "--output-docbin",
        out_docs,
        "--docs-per-file",
        5,
        "--batch-size",
        BATCH_SIZE,
    )
    assert result.exit_code == 0, result.output
    assert "Annotated 16 texts" in result.output
    expected = _expected_records(model_dir, sorted(shard_dir.glob("part-*.jsonl")))
    records = _read_jsonl(out_jsonl)
    assert records == expected
    assert any(record["spans"][KEY] for record in records)
    files = sorted(out_docs.iterdir())
    assert [f.name for f in files] == ["00000.spacy", "00001.spacy", "00002.spacy", "00003.spacy"]
    docs = [doc for f in files for doc in DocBin().from_disk(f).get_docs(Vocab())]
    assert len(docs) == len(records)
    for doc, record in zip(docs, records):
        assert doc.text == record["text"]
        # DocBin's msgpack gives lists back as tuples
        kept = json.loads(json.dumps(doc.user_data["record"]))
        assert kept == {k: record[k] for k in ("source", "index", "meta")}
        spans = [(e.start_char, e.end_char, e.label_) for e in doc.ents]
        assert spans == [(s["start"], s["end"], s["label"]) for s in record["spans"][KEY]]
        probabilities = [float(p) for p in doc.spans[KEY].attrs["scores"]]
        assert probabilities == [s["probability"] for s in record["spans"][KEY]]


@pytest.mark.slow
def test_local_engine_reads_its_docbin_output_and_text_shards(model_dir, shard_dir, tmp_path):
    """A DocBin written by annotate is an input shard that keeps its metadata and its
    entities, beside a text shard (a text per line) in the same directory."""
    first = tmp_path / "first.jsonl"
    inputs = tmp_path / "inputs"
    result = _run(model_dir, "-i", shard_dir / "part-0.jsonl", "-oj", first, "-od", inputs)
    assert result.exit_code == 0, result.output
    (inputs / "more.txt").write_text("Peter Blackburn lives in Berlin .\n\nEU rejects it\n")
    again = tmp_path / "again.jsonl"
    result = _run(model_dir, "--input", inputs, "--output-jsonl", again)
    assert result.exit_code == 0, result.output
    records, before = _read_jsonl(again), _read_jsonl(first)
    assert [r["meta"] for r in records] == [r["meta"] for r in before] + [{}, {}]
    assert [r["text"] for r in records[-2:]] == [
        "Peter Blackburn lives in Berlin .",
        "EU rejects it",
    ]
    more = str(inputs / "more.txt")
    assert [(r["source"], r["index"]) for r in records[-2:]] == [(more, 0), (more, 1)]
    # the DocBin's docs go through as they are: lm_crf_ner keeps their entities (preset,
    # probability 1), as spaCy's ner does
    for record, previous in zip(records, before):
        spans = record["spans"][KEY]
        assert [(s["start"], s["end"], s["label"]) for s in spans] == [
            (s["start"], s["end"], s["label"]) for s in previous["spans"][KEY]
        ]
        assert all(s["probability"] == 1.0 for s in spans)


def test_find_shards_and_read_shard(tmp_path):
    (tmp_path / "b.jsonl").write_text('{"text": "two", "id": 2}\n')
    (tmp_path / "a.txt").write_text("one\n\n")
    (tmp_path / "notes.md").write_text("not a shard")
    assert find_shards([str(tmp_path)]) == [tmp_path / "a.txt", tmp_path / "b.jsonl"]
    assert find_shards([str(tmp_path / "*.jsonl")]) == [tmp_path / "b.jsonl"]
    with pytest.raises(ValueError, match="no such file"):
        find_shards([str(tmp_path / "missing-*.jsonl")])
    (row,) = read_shard(tmp_path / "b.jsonl")
    assert (row["source"], row["index"], row["text"]) == (str(tmp_path / "b.jsonl"), 0, "two")
    assert json.loads(row["meta"]) == {"id": 2}


def test_engine_ray_without_ray_says_how_to_install(tmp_path, monkeypatch):
    shard = tmp_path / "a.txt"
    shard.write_text("one\n")
    monkeypatch.setitem(sys.modules, "ray", None)
    result = _run(tmp_path / "no-model", "--input", shard, "--engine", "ray")
    assert result.exit_code == 1
    assert 'pip install "spacy-lmcrf[ray]"' in " ".join(result.output.split())


@requires_ray
@pytest.mark.slow
def test_ray_with_two_actors_gives_what_nlp_pipe_gives(model_dir, shard_dir, tmp_path, ray_local):
    out = tmp_path / "ray.jsonl"
    result = _run(
        model_dir,
        "--input",
        shard_dir,
        "--output-jsonl",
        out,
        "--engine",
        "ray",
        "--actors",
        2,
        "--batch-size",
        BATCH_SIZE,
    )
    assert result.exit_code == 0, result.output
    shards = sorted(shard_dir.glob("part-*.jsonl"))
    assert _read_jsonl(out) == _expected_records(model_dir, shards)
    assert ray_local.is_initialized(), "a Ray the command did not start is left running"


class DiesOnItsFirstBatch(PipelineAnnotator):
    """An annotator whose actor ends its process on its first batch, the first time of
    all actors (a marker file next to the model says it has happened)."""

    def __init__(self, model, **kwargs):
        super().__init__(model, **kwargs)
        self.marker = Path(model).parent / "an-actor-died"

    def __call__(self, batch):
        try:
            os.close(os.open(self.marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return super().__call__(batch)
        os._exit(1)


@requires_ray
@pytest.mark.slow
def test_ray_retries_the_batch_of_a_killed_actor(model_dir, shard_dir, ray_local):
    shards = sorted(shard_dir.glob("part-*.jsonl"))
    results = annotate_shards_on_ray(
        str(model_dir),
        shards,
        actors=2,
        batch_size=BATCH_SIZE,
        annotator=DiesOnItsFirstBatch,
    )
    records = [record for record, _, _ in results]
    assert (model_dir.parent / "an-actor-died").exists()
    assert records == _expected_records(model_dir, shards)
