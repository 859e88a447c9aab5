"""`spacy lmcrf annotate`: run a pipeline over new text, print each span with its
probability, and write a displaCy page of the result.

    python -m spacy lmcrf annotate training/demo/model-best "Angela Merkel visited Paris ." \\
        --input assets/demo_texts.txt --displacy-path metrics/demo_displacy
"""

from pathlib import Path
from typing import Iterable, List, Optional, Tuple

import spacy
import srsly
import typer
from spacy.cli._util import Arg, Opt
from spacy.language import Language
from spacy.tokens import Doc
from wasabi import msg

from .evaluate import render_displacy
from .pipeline import CRFEntityRecognizer, CRFSequenceLabeler, CRFTagger

SpanRow = Tuple[str, str, float]


def read_texts(path: Path) -> List[str]:
    """The texts of a file: one per non-empty line of a text file, or the "text" of
    each record of a .jsonl file."""
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.suffix == ".jsonl":
        texts = []
        for i, record in enumerate(srsly.read_jsonl(path), start=1):
            if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                raise ValueError(f"{path}, line {i}: a record needs a string under 'text'")
            texts.append(record["text"])
        return texts
    return [line.strip() for line in path.read_text(encoding="utf8").splitlines() if line.strip()]


def span_keys(nlp: Language) -> List[Tuple[str, str]]:
    """(component name, doc.spans key) of the pipeline's CRF span labelers."""
    return [
        (name, proc.cfg["spans_key"])
        for name, proc in nlp.pipeline
        if isinstance(proc, CRFSequenceLabeler)
        and not isinstance(proc, CRFTagger)
        and proc.cfg.get("spans_key")
    ]


def scored_spans(doc: Doc, key: str) -> List[SpanRow]:
    """(text, label, probability) of each span of doc.spans[key]."""
    if key not in doc.spans:
        return []
    group = doc.spans[key]
    scores = group.attrs.get("scores")
    probabilities = (
        [float(x) for x in scores] if scores is not None else [float("nan")] * len(group)
    )
    return [(span.text, span.label_, p) for span, p in zip(group, probabilities)]


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


def annotate_cli(
    model: str = Arg(..., help="Pipeline name or directory"),
    texts: Optional[List[str]] = Arg(None, help="Texts to annotate (or use --input)"),
    input_path: Optional[Path] = Opt(
        None, "--input", "-i", help="Text file (one text per line) or .jsonl with 'text'"
    ),
    displacy_path: Optional[Path] = Opt(
        None, "--displacy-path", "-dp", help="Directory for a displaCy HTML page of the result"
    ),
    gpu_id: int = Opt(-1, "--gpu-id", "-g", help="GPU ID or -1 for CPU"),
):
    """Annotate new text with a trained pipeline: print every entity (or span) with its
    probability (the CRF's marginal), and optionally write a displaCy page
    (DIR/entities.html, or DIR/spans.html for a span labeler)."""
    all_texts = list(texts or [])
    try:
        if input_path is not None:
            all_texts.extend(read_texts(input_path))
    except ValueError as error:
        msg.fail(str(error), exits=1)
    if not all_texts:
        msg.fail("Nothing to annotate: give texts or --input FILE", exits=1)
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    try:
        nlp = spacy.load(model)
    except (OSError, ValueError) as error:
        msg.fail(f"Cannot load the pipeline {model}: {error}", exits=1)
    docs, found = annotate(nlp, all_texts)
    for doc, groups in zip(docs, found):
        msg.text(doc.text)
        for key, rows in groups:
            for text, label, probability in rows:
                msg.text(f"    {label:<8} {probability:6.3f}  {text}")
            if not rows:
                msg.text(f"    (no {key})")
    if displacy_path is not None:
        try:
            kind, key = displacy_kind(nlp)
        except ValueError as error:
            msg.fail(str(error), exits=1)
        page = render_displacy(docs, kind, key, displacy_path, limit=len(docs))
        msg.good(f"displaCy page of {len(docs)} texts", str(page))


if __name__ == "__main__":
    typer.run(annotate_cli)
