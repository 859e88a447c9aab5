"""`spacy lmcrf annotate`: run a pipeline over new text and report each span with its
probability (the CRF's marginal): printed, written as JSONL and/or DocBin, and drawn as a
displaCy page.

    python -m spacy lmcrf annotate training/demo/model-best "Angela Merkel visited Paris ." \\
        --input assets/demo_texts.txt --displacy-path metrics/demo_displacy

At scale, the inputs are shards (files, directories or globs) of plain text (one text per
line), JSONL (a "text" per record; the other fields are kept as its metadata) or DocBin
(.spacy: its docs go through the pipeline as they are, so an lm_crf_ner keeps the
entities already on them, unless overwrite_ents); they are read as a stream, one shard at
a time, and the results are written as they come, in input order:

    python -m spacy lmcrf annotate MODEL --input "shards/*.jsonl" \\
        --output-jsonl out.jsonl --output-docbin out_docs --n-process 2
    python -m spacy lmcrf annotate MODEL --input shards/ --output-jsonl out.jsonl \\
        --engine ray --actors 4 --cpus-per-actor 1 [--address ray://head:10001]

A JSONL output record (one per input text):

    {"source": "shards/a.jsonl", "index": 0, "text": "...", "meta": {...},
     "spans": {"lm_crf_ner": [{"start": 0, "end": 13, "label": "PER",
                               "text": "Angela Merkel", "probability": 0.98}]}}

"source" and "index" (the record's position in its shard) identify every record, "meta" is
a JSONL record's other fields, and "spans" holds, under the doc.spans key of each CRF span
labeler (an lm_crf_ner's entities are under its key, the component's name by default),
the spans with character offsets. A DocBin output keeps the same identity and metadata in
doc.user_data["record"].

With --engine ray, Ray Data runs the pipeline in a pool of actors (each loads the pipeline
once), a local Ray on this machine unless --address names a cluster; there, every worker
needs spacy-lmcrf and must find the model and the input shards at the same paths (an
installed pipeline package and a shared file system). Ray is an optional extra:
pip install "spacy-lmcrf[ray]".
"""

import glob
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy
import spacy
import srsly
import typer
from spacy.cli._util import Arg, Opt
from spacy.language import Language
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab
from tqdm import tqdm
from wasabi import msg

from .evaluate import load_pipeline, render_displacy
from .pipeline import CRFEntityRecognizer, CRFSequenceLabeler, CRFTagger

SpanRow = Tuple[str, str, float]
# One input text on its way to the pipeline: source (its shard), index (its position
# there), text, meta (the JSONL record's other fields, as a JSON string so that Ray Data
# can hold records of any shape) and doc (a DocBin doc's bytes, b"" for a text).
Row = Dict[str, Any]
# One annotated text: the output record (see the module doc), the doc when asked for
# (DocBin output, displaCy), and its number of tokens.
Result = Tuple[Dict[str, Any], Optional[Doc], int]

SHARD_SUFFIXES = (".txt", ".jsonl", ".spacy")
# Ray Data's block size on --engine ray (its default is 128 MiB): a few hundred sentences
BLOCK_BYTES = 64 * 1024
RAY_INSTALL = 'pip install "spacy-lmcrf[ray]" (or pip install "ray[data]>=2.9,<3")'


def find_shards(specs: Sequence[str]) -> List[Path]:
    """The input files that specs name, in order: a file, every .txt, .jsonl and .spacy
    file under a directory (sorted), or the files a glob matches (sorted).

    specs (Sequence[str]): file paths, directories or glob patterns.
    RETURNS (List[Path]): the shards.
    """
    shards: List[Path] = []
    for spec in specs:
        path = Path(spec)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix in SHARD_SUFFIXES)
        elif path.is_file():
            found = [path]
        else:
            found = sorted(Path(p) for p in glob.glob(spec, recursive=True) if Path(p).is_file())
        if not found:
            raise ValueError(f"{spec}: no such file, or no {'/'.join(SHARD_SUFFIXES)} files")
        shards.extend(found)
    return shards


def read_shard(path: Path, source: Optional[str] = None) -> Iterator[Row]:
    """The rows of one shard, read as a stream (a DocBin is loaded whole): a row per
    non-empty line of a text file, per record of a .jsonl file, per doc of a .spacy file.

    path (Path): the shard.
    source (Optional[str]): the rows' source; str(path) if None.
    YIELDS (Row): its rows (see Row).
    """
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    source = str(path) if source is None else source
    if path.suffix == ".jsonl":
        for i, record in enumerate(srsly.read_jsonl(path)):
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise ValueError(f"{path}, line {i + 1}: a record needs a string under 'text'")
            meta = {key: value for key, value in record.items() if key != "text"}
            yield _row(source, i, record["text"], meta)
    elif path.suffix == ".spacy":
        for i, doc in enumerate(DocBin().from_disk(path).get_docs(Vocab())):
            meta = doc.user_data.get("record", {}).get("meta", {})
            yield _row(source, i, doc.text, meta, doc.to_bytes())
    else:
        with path.open(encoding="utf8") as lines:
            texts = (line.strip() for line in lines)
            for i, text in enumerate(text for text in texts if text):
                yield _row(source, i, text, {})


def _row(source: str, index: int, text: str, meta: Dict[str, Any], doc: bytes = b"") -> Row:
    return {"source": source, "index": index, "text": text, "meta": json.dumps(meta), "doc": doc}


def read_rows(shards: Iterable[Path]) -> Iterator[Row]:
    """The rows of every shard, one shard after the other."""
    for shard in shards:
        yield from read_shard(shard)


def text_rows(texts: Sequence[str]) -> Iterator[Row]:
    """Rows of texts given on the command line (source "<args>")."""
    for i, text in enumerate(texts):
        yield _row("<args>", i, text, {})


def read_texts(path: Path) -> List[str]:
    """The texts of a file: one per non-empty line of a text file, the "text" of each
    record of a .jsonl file, or the text of each doc of a .spacy file."""
    return [row["text"] for row in read_shard(path)]


def span_keys(nlp: Language) -> List[Tuple[str, str]]:
    """(component name, doc.spans key) of the pipeline's CRF span labelers."""
    return [
        (name, proc.cfg["spans_key"])
        for name, proc in nlp.pipeline
        if isinstance(proc, CRFSequenceLabeler)
        and not isinstance(proc, CRFTagger)
        and proc.cfg.get("spans_key")
    ]


def _probabilities(doc: Doc, key: str) -> List[float]:
    group = doc.spans[key]
    scores = group.attrs.get("scores")
    if scores is None:
        return [float("nan")] * len(group)
    return [float(x) for x in scores]


def scored_spans(doc: Doc, key: str) -> List[SpanRow]:
    """(text, label, probability) of each span of doc.spans[key]."""
    if key not in doc.spans:
        return []
    return [
        (span.text, span.label_, p) for span, p in zip(doc.spans[key], _probabilities(doc, key))
    ]


def span_records(doc: Doc, key: str) -> List[Dict[str, Any]]:
    """The spans of doc.spans[key] as JSON objects: start and end (character offsets),
    label, text and probability (null when the group has no scores)."""
    if key not in doc.spans:
        return []
    return [
        {
            "start": span.start_char,
            "end": span.end_char,
            "label": span.label_,
            "text": span.text,
            "probability": None if numpy.isnan(p) else p,
        }
        for span, p in zip(doc.spans[key], _probabilities(doc, key))
    ]


def displacy_kind(nlp: Language) -> Tuple[str, str]:
    """(kind, spans key) to draw: "ner" when a CRF NER is in the pipeline, else "spans"
    with the first CRF span labeler's key."""
    keys = span_keys(nlp)
    if not keys:
        raise ValueError("the pipeline has no lm_crf_ner or lm_crf_spans component to show")
    if any(isinstance(nlp.get_pipe(name), CRFEntityRecognizer) for name, _ in keys):
        return "ner", keys[0][1]
    return "spans", keys[0][1]


def annotate(
    nlp: Language, texts: Iterable[str], batch_size: int = 64
) -> Tuple[List[Doc], List[List[Tuple[str, List[SpanRow]]]]]:
    """The docs, and for each doc the (spans key, scored spans) of every CRF span labeler."""
    keys = span_keys(nlp)
    docs = list(nlp.pipe(texts, batch_size=batch_size))
    return docs, [[(key, scored_spans(doc, key)) for _, key in keys] for doc in docs]


def row_doc(nlp: Language, row: Row) -> Doc:
    """The doc to annotate for a row (a DocBin's doc as it was, or the tokenized text),
    with the row's identity and metadata in doc.user_data["record"]."""
    doc = Doc(nlp.vocab).from_bytes(row["doc"]) if len(row["doc"]) else nlp.make_doc(row["text"])
    doc.user_data["record"] = {
        "source": str(row["source"]),
        "index": int(row["index"]),
        "meta": json.loads(row["meta"]),
    }
    return doc


def output_record(doc: Doc, keys: Sequence[str]) -> Dict[str, Any]:
    """The JSONL record of an annotated doc made by row_doc (see the module doc)."""
    record = doc.user_data["record"]
    return {
        "source": record["source"],
        "index": record["index"],
        "text": doc.text,
        "meta": record["meta"],
        "spans": {key: span_records(doc, key) for key in keys},
    }


def annotate_rows(
    nlp: Language,
    rows: Iterable[Row],
    *,
    batch_size: int = 64,
    n_process: int = 1,
    keep_docs: bool = False,
) -> Iterator[Result]:
    """Annotate rows in this process (nlp.pipe, in input order), as a stream.

    nlp (Language): the pipeline.
    rows (Iterable[Row]): the inputs, e.g. read_rows(shards).
    batch_size (int): nlp.pipe's batch size.
    n_process (int): nlp.pipe's processes.
    keep_docs (bool): whether to yield the docs (else None).
    YIELDS (Result): (output record, doc or None, number of tokens) per row.
    """
    keys = [key for _, key in span_keys(nlp)]
    docs = (row_doc(nlp, row) for row in rows)
    for doc in nlp.pipe(docs, batch_size=batch_size, n_process=n_process):
        yield output_record(doc, keys), doc if keep_docs else None, len(doc)


class PipelineAnnotator:
    """Ray Data's callable class for map_batches: each actor loads the pipeline once and
    annotates batches of rows into batches of {"record": JSON, "doc": bytes, "tokens"}.

    model (str): pipeline name or directory, loadable where the actor runs.
    threads (int): torch's threads in the actor.
    use_gpu (bool): run the pipeline on the actor's GPU.
    keep_docs (bool): return each doc's bytes (else b"").
    """

    def __init__(
        self, model: str, threads: int = 1, use_gpu: bool = False, keep_docs: bool = False
    ):
        import torch

        torch.set_num_threads(threads)
        if use_gpu:
            spacy.require_gpu(0)
        self.nlp = spacy.load(model)
        self.keys = [key for _, key in span_keys(self.nlp)]
        self.keep_docs = keep_docs

    def __call__(self, batch: Dict[str, numpy.ndarray]) -> Dict[str, numpy.ndarray]:
        names = ("source", "index", "text", "meta", "doc")
        rows = [dict(zip(names, values)) for values in zip(*(batch[name] for name in names))]
        docs = [row_doc(self.nlp, row) for row in rows]
        docs = list(self.nlp.pipe(docs, batch_size=max(1, len(docs))))
        return {
            "record": numpy.array(
                [json.dumps(output_record(d, self.keys)) for d in docs], dtype=object
            ),
            "doc": numpy.array(
                [d.to_bytes() if self.keep_docs else b"" for d in docs], dtype=object
            ),
            "tokens": numpy.array([len(d) for d in docs], dtype="int64"),
        }


def import_ray() -> Any:
    """The ray module with Ray Data, or a ValueError that says how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError as error:
        raise ValueError(
            f"--engine ray needs Ray Data, which is not installed: {RAY_INSTALL}"
        ) from error
    return ray


def _read_shard_rows(item: Dict[str, Any]) -> Iterator[Row]:
    return read_shard(Path(item["path"]), source=item["source"])


def annotate_shards_on_ray(
    model: str,
    shards: Sequence[Path],
    *,
    actors: int = 1,
    cpus_per_actor: float = 1.0,
    gpus_per_actor: float = 0.0,
    batch_size: int = 64,
    keep_docs: bool = False,
    annotator: type = PipelineAnnotator,
) -> Iterator[Result]:
    """Annotate the shards on Ray Data, in input order: read in tasks (a shard each, in
    blocks of BLOCK_BYTES), annotated by a pool of `actors` actors, streamed back here.
    Ray must be initialized (ray.init): the caller decides where it runs. A batch whose
    actor dies is retried on the restarted actor. Sets the current DataContext's
    preserve_order and target_max_block_size.

    model (str): pipeline name or directory, loadable by every actor.
    shards (Sequence[Path]): the inputs, at paths every worker can read.
    actors (int): the actor pool's size.
    cpus_per_actor (float): CPUs per actor (and its torch threads, at least 1).
    gpus_per_actor (float): GPUs per actor; > 0 runs the pipeline on GPU.
    batch_size (int): rows per batch sent to an actor.
    keep_docs (bool): whether to yield the docs (else None).
    annotator (type): the callable class, PipelineAnnotator or a subclass.
    YIELDS (Result): (output record, doc or None, number of tokens) per row.
    """
    ray = import_ray()
    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True
    context.enable_progress_bars = False
    paths = [{"path": str(shard.resolve()), "source": str(shard)} for shard in shards]
    # Reading takes no CPU from the pool's reservation: with every CPU held by an actor,
    # a read task that needs one would wait forever.
    # A block goes to one actor: small blocks let all actors work on one shard. (A
    # repartition would run as tasks that need a CPU, which the actors may all hold.)
    context.target_max_block_size = BLOCK_BYTES
    dataset = ray.data.from_items(paths).flat_map(_read_shard_rows, num_cpus=0)
    dataset = dataset.map_batches(
        annotator,
        fn_constructor_kwargs={
            "model": model,
            "threads": max(1, int(cpus_per_actor)),
            "use_gpu": gpus_per_actor > 0,
            "keep_docs": keep_docs,
        },
        batch_size=batch_size,
        batch_format="numpy",
        # Ray Data starts the pool's actors with max_restarts=-1 and max_task_retries=-1:
        # a batch whose actor died is run again on the restarted actor.
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cpus_per_actor,
        num_gpus=gpus_per_actor,
    )
    vocab = Vocab()
    for batch in dataset.iter_batches(batch_size=None, batch_format="numpy"):
        for record, doc_bytes, tokens in zip(batch["record"], batch["doc"], batch["tokens"]):
            doc = Doc(vocab).from_bytes(doc_bytes) if keep_docs else None
            yield json.loads(record), doc, int(tokens)


def start_ray(address: Optional[str], needed_cpus: float) -> bool:
    """Connect to the Ray cluster at address, or start a local Ray on this machine when
    address is None and none is running. Returns whether Ray was started or connected
    here (and should be shut down after)."""
    ray = import_ray()
    if ray.is_initialized():
        return False
    ray.init(address=address, logging_level="WARNING", include_dashboard=False)
    if address is None:
        available = ray.cluster_resources().get("CPU", 0)
        if needed_cpus > available:
            ray.shutdown()
            raise ValueError(
                f"the actors need {needed_cpus:g} CPUs, this machine's Ray has {available:g}: "
                "give fewer --actors or --cpus-per-actor"
            )
    return True


class DocBinWriter:
    """Write docs as numbered DocBin files (DIR/00000.spacy, ...) of at most docs_per_file
    docs each, so that the docs in memory are one file's."""

    def __init__(self, directory: Path, docs_per_file: int):
        if docs_per_file < 1:
            raise ValueError(f"--docs-per-file must be positive, got {docs_per_file}")
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.docs_per_file = docs_per_file
        self.files: List[Path] = []
        self.docbin = DocBin(store_user_data=True)

    def add(self, doc: Doc) -> None:
        self.docbin.add(doc)
        if len(self.docbin) >= self.docs_per_file:
            self.flush()

    def flush(self) -> None:
        if len(self.docbin):
            path = self.directory / f"{len(self.files):05d}.spacy"
            self.docbin.to_disk(path)
            self.files.append(path)
            self.docbin = DocBin(store_user_data=True)


def print_record(record: Dict[str, Any]) -> None:
    """Print a record's text, then each span with its label and probability."""
    msg.text(record["text"])
    for key, spans in record["spans"].items():
        for span in spans:
            p = float("nan") if span["probability"] is None else span["probability"]
            msg.text(f"    {span['label']:<8} {p:6.3f}  {span['text']}")
        if not spans:
            msg.text(f"    (no {key})")


def write_results(
    results: Iterable[Result],
    *,
    output_jsonl: Optional[Path] = None,
    output_docbin: Optional[Path] = None,
    docs_per_file: int = 10000,
    displacy_limit: int = 0,
    show_progress: bool = True,
) -> Tuple[int, int, List[Doc]]:
    """Consume the results as they come: print them when no output is named, else write
    each record to output_jsonl (one JSON object a line) and each doc to output_docbin,
    with a progress bar.

    RETURNS (Tuple[int, int, List[Doc]]): the number of docs, of tokens, and the first
        displacy_limit docs.
    """
    docbin = DocBinWriter(output_docbin, docs_per_file) if output_docbin else None
    jsonl = output_jsonl.open("w", encoding="utf8") if output_jsonl else None
    printing = jsonl is None and docbin is None
    n_docs = n_tokens = 0
    shown: List[Doc] = []
    progress = tqdm(
        results, unit="doc", disable=printing or not show_progress, file=sys.stderr, leave=False
    )
    try:
        for record, doc, tokens in progress:
            n_docs += 1
            n_tokens += tokens
            if printing:
                print_record(record)
            if jsonl is not None:
                jsonl.write(json.dumps(record, ensure_ascii=False) + "\n")
            if doc is not None:
                if docbin is not None:
                    docbin.add(doc)
                if len(shown) < displacy_limit:
                    shown.append(doc)
    finally:
        progress.close()
        if jsonl is not None:
            jsonl.close()
        if docbin is not None:
            docbin.flush()
    return n_docs, n_tokens, shown


def annotate_cli(
    model: str = Arg(..., help="Pipeline name or directory"),
    texts: Optional[List[str]] = Arg(None, help="Texts to annotate (or use --input)"),
    inputs: Optional[List[str]] = Opt(
        None,
        "--input",
        "-i",
        help="Input shards (repeatable): a file, directory or glob of .txt (a text per line), "
        ".jsonl (a 'text' per record, other fields kept) or .spacy (DocBin) files",
    ),
    output_jsonl: Optional[Path] = Opt(
        None, "--output-jsonl", "-oj", help="JSONL file of the results (a record per text)"
    ),
    output_docbin: Optional[Path] = Opt(
        None, "--output-docbin", "-od", help="Directory of DocBin files of the annotated docs"
    ),
    docs_per_file: int = Opt(10000, "--docs-per-file", help="Docs per --output-docbin file"),
    displacy_path: Optional[Path] = Opt(
        None, "--displacy-path", "-dp", help="Directory for a displaCy HTML page of the result"
    ),
    displacy_limit: int = Opt(100, "--displacy-limit", help="Docs drawn on the displaCy page"),
    engine: str = Opt("local", "--engine", "-e", help="local (nlp.pipe) or ray (Ray Data)"),
    batch_size: int = Opt(64, "--batch-size", "-b", help="Texts per batch"),
    n_process: int = Opt(1, "--n-process", "-n", help="Processes (local engine)"),
    actors: int = Opt(1, "--actors", help="Actors, each with a copy of the pipeline (ray)"),
    cpus_per_actor: float = Opt(1.0, "--cpus-per-actor", help="CPUs (torch threads) per actor"),
    gpus_per_actor: float = Opt(0.0, "--gpus-per-actor", help="GPUs per actor (ray)"),
    address: Optional[str] = Opt(
        None, "--address", help="Ray cluster address (ray); default: a local Ray on this machine"
    ),
    gpu_id: int = Opt(-1, "--gpu-id", "-g", help="GPU ID or -1 for CPU (local engine)"),
):
    """Annotate new text with a trained pipeline: every entity (or span) with its
    probability (the CRF's marginal). Printed, or written to --output-jsonl and/or
    --output-docbin as a stream, in input order; optionally a displaCy page
    (DIR/entities.html, or DIR/spans.html for a span labeler). --engine ray runs it on
    Ray Data with a pool of --actors actors."""
    if engine not in ("local", "ray"):
        msg.fail(f"--engine is local or ray, not {engine!r}", exits=1)
    if not texts and not inputs:
        msg.fail("Nothing to annotate: give texts or --input FILE", exits=1)
    if engine == "ray" and texts:
        msg.fail("--engine ray reads --input shards: put the texts in a file", exits=1)
    try:
        shards = find_shards(inputs or [])
        if engine == "ray":
            import_ray()
    except ValueError as error:
        msg.fail(str(error), exits=1)
    if engine == "local" and gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    try:
        nlp = load_pipeline(model)
    except (OSError, ValueError) as error:
        msg.fail(f"Cannot load the pipeline {model}: {error}", exits=1)
    kind = key = ""
    if displacy_path is not None:
        try:
            kind, key = displacy_kind(nlp)
        except ValueError as error:
            msg.fail(str(error), exits=1)
    keep_docs = output_docbin is not None or displacy_path is not None
    limit = displacy_limit if displacy_path is not None else 0
    start = time.perf_counter()
    started_ray = False
    try:
        if engine == "ray":
            started_ray = start_ray(address, actors * cpus_per_actor)
            results = annotate_shards_on_ray(
                str(Path(model).resolve()) if Path(model).exists() else model,
                shards,
                actors=actors,
                cpus_per_actor=cpus_per_actor,
                gpus_per_actor=gpus_per_actor,
                batch_size=batch_size,
                keep_docs=keep_docs,
            )
        else:
            rows = itertools.chain(text_rows(texts or []), read_rows(shards))
            results = annotate_rows(
                nlp, rows, batch_size=batch_size, n_process=n_process, keep_docs=keep_docs
            )
        n_docs, n_tokens, shown = write_results(
            results,
            output_jsonl=output_jsonl,
            output_docbin=output_docbin,
            displacy_limit=limit,
            docs_per_file=docs_per_file,
        )
    except ValueError as error:
        msg.fail(str(error), exits=1)
    finally:
        if started_ray:
            import_ray().shutdown()
    seconds = time.perf_counter() - start
    if output_jsonl is not None or output_docbin is not None:
        msg.good(
            f"Annotated {n_docs} texts ({n_tokens} tokens) in {seconds:.1f}s: "
            f"{n_docs / seconds:.1f} texts/s, {n_tokens / seconds:.0f} tokens/s ({engine})"
        )
        for path in (output_jsonl, output_docbin):
            if path is not None:
                msg.text(f"Written: {path}")
    if displacy_path is not None:
        page = render_displacy(shown, kind, key, displacy_path, limit=max(1, len(shown)))
        msg.good(f"displaCy page of {len(shown)} texts", str(page))


if __name__ == "__main__":
    typer.run(annotate_cli)
