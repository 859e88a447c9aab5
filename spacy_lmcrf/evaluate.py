"""Evaluate a trained pipeline with conlleval's counting, cross-checked with spaCy's Scorer.

    python -m spacy_lmcrf.evaluate MODEL DATA --output metrics.json \\
        --conll-output preds.txt [--kind ner|spans|tags] [--spans-key chunks] \\
        [--scheme IOB2] [--gpu-id -1] [--batch-size 256]

The pipeline runs (nlp.pipe, batched) over the gold tokens of every doc of the
.spacy DATA, as the CoNLL evaluations and the papers do: no re-tokenization,
so every gold token gets exactly one predicted tag (spaCy's own ``spacy
evaluate`` re-tokenizes the text and aligns). The predictions are written as a
conlleval file (``token gold predicted``, a blank line after each doc, tags in
``--scheme``), so the official script can be run on it; the metrics are
counted from that file by ``spacy_lmcrf.conlleval``. ``kind`` says what is
scored: ``ner`` doc.ents, ``spans`` doc.spans[spans_key], ``tags`` token.tag_
(token accuracy).

The JSON holds conlleval's numbers in percent (unrounded): accuracy, precision,
recall, f1, the counts and per_type (for tags: tokens and accuracy only), and
the printed report. spaCy's Scorer scores the same predictions (``Scorer(nlp).score``, the
components' own scorers); its micro P/R/F1 (and per type) or tag accuracy
must equal conlleval's. The JSON records both; a disagreement exits with
status 1 after writing it.
"""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import spacy
from spacy.language import Language
from spacy.scorer import Scorer
from spacy.tokens import Doc, DocBin
from spacy.training import Example

from .conlleval import (
    KINDS,
    conlleval_metrics,
    evaluate_file,
    format_accuracy,
    format_report,
    write_conlleval,
)
from .tags import SCHEMES
from .training.corpus import CORPUS_KEY

TOLERANCE = 1e-6  # in percentage points; spaCy adds 1e-100 to its denominators


def predict_on_gold_tokens(
    nlp: Language, gold_docs: Sequence[Doc], batch_size: int = 256, corpus: Optional[str] = None
) -> List[Example]:
    """Run the pipeline over copies of the gold docs' words and spaces (no annotation),
    tagged with the corpus name `corpus` if given (doc.user_data["lmcrf_corpus"]: in a
    cross-lingual pipeline only that language's components annotate them)."""
    inputs = (
        Doc(
            nlp.vocab,
            words=[t.text for t in doc],
            spaces=[bool(t.whitespace_) for t in doc],
            user_data={} if corpus is None else {CORPUS_KEY: corpus},
        )
        for doc in gold_docs
    )
    return [
        Example(pred, gold)
        for pred, gold in zip(nlp.pipe(inputs, batch_size=batch_size), gold_docs)
    ]


def spacy_scores(
    nlp: Language, examples: Sequence[Example], kind: str, spans_key: str
) -> Dict[str, Any]:
    """spaCy's Scorer on the examples, as percentages: p/r/f/per_type, or acc for tags."""
    scores = Scorer(nlp).score(examples)
    if kind == "tags":
        acc = scores.get("tag_acc")
        return {"accuracy": None if acc is None else 100 * acc}
    prefix = "ents" if kind == "ner" else f"spans_{spans_key}"
    if f"{prefix}_f" not in scores:
        raise ValueError(
            f"spaCy's Scorer gave no '{prefix}_f' score: does the pipeline "
            f"({', '.join(nlp.pipe_names)}) have a component scored on it?"
        )

    def percent(value: Optional[float]) -> float:
        return 0.0 if value is None else 100 * value

    per_type = scores.get(f"{prefix}_per_type") or {}
    return {
        "precision": percent(scores[f"{prefix}_p"]),
        "recall": percent(scores[f"{prefix}_r"]),
        "f1": percent(scores[f"{prefix}_f"]),
        "per_type": {
            label: {"precision": 100 * s["p"], "recall": 100 * s["r"], "f1": 100 * s["f"]}
            for label, s in sorted(per_type.items())
        },
    }


def disagreements(ours: Dict[str, Any], theirs: Dict[str, Any], kind: str) -> List[str]:
    """Where spaCy's scores differ from conlleval's by more than TOLERANCE."""
    keys = ("accuracy",) if kind == "tags" else ("precision", "recall", "f1")
    found = []
    for key in keys:
        a, b = ours[key], theirs[key]
        if (a is None) != (b is None) or (a is not None and abs(a - b) > TOLERANCE):
            found.append(f"{key}: conlleval {a} vs spaCy {b}")
    if kind != "tags":
        for label in sorted(set(ours["per_type"]) | set(theirs["per_type"])):
            mine, other = ours["per_type"].get(label), theirs["per_type"].get(label)
            if mine is None or other is None:
                found.append(f"{label}: scored by only one of them")
                continue
            for key in keys:
                if abs(mine[key] - other[key]) > TOLERANCE:
                    found.append(f"{label} {key}: conlleval {mine[key]} vs spaCy {other[key]}")
    return found


def evaluate(
    model: Path,
    data: Path,
    conll_output: Path,
    *,
    kind: str = "ner",
    spans_key: str = "chunks",
    scheme: str = "IOB2",
    gpu_id: int = -1,
    batch_size: int = 256,
    corpus: Optional[str] = None,
) -> Dict[str, Any]:
    """Predict, write the conlleval file, and return the metrics dict (see the module doc)."""
    if kind not in KINDS:
        raise ValueError(f"Unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    nlp = spacy.load(model)
    gold_docs = list(DocBin().from_disk(data).get_docs(nlp.vocab))
    start = time.perf_counter()
    examples = predict_on_gold_tokens(nlp, gold_docs, batch_size, corpus)
    seconds = time.perf_counter() - start
    n_docs, n_tokens = write_conlleval(
        examples, conll_output, kind, spans_key=spans_key, scheme=scheme
    )
    counts = evaluate_file(conll_output, None if kind == "tags" else scheme)
    if counts.tokens != n_tokens:
        raise ValueError(f"{conll_output}: read back {counts.tokens} tokens, wrote {n_tokens}")
    metrics = conlleval_metrics(counts)
    if kind == "tags":
        metrics = {key: metrics[key] for key in ("tokens", "correct_tags", "accuracy")}
    theirs = spacy_scores(nlp, examples, kind, spans_key)
    problems = disagreements(metrics, theirs, kind)
    return {
        "model": str(model),
        "data": str(data),
        "kind": kind,
        "spans_key": spans_key if kind == "spans" else None,
        "scheme": None if kind == "tags" else scheme,
        "docs": n_docs,
        "conll_output": str(conll_output),
        **metrics,
        "report": format_accuracy(counts) if kind == "tags" else format_report(counts),
        "spacy_scorer": theirs,
        "spacy_scorer_agrees": not problems,
        "disagreements": problems,
        "words_per_second": n_tokens / seconds if seconds > 0 else None,
        "gpu_id": gpu_id,
        "corpus": corpus,
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Command line entry point; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m spacy_lmcrf.evaluate",
        description="Evaluate a pipeline with conlleval's counting on a .spacy corpus.",
    )
    parser.add_argument("model", type=Path, help="pipeline directory or package name")
    parser.add_argument("data", type=Path, help=".spacy file with the gold docs")
    parser.add_argument("--output", type=Path, required=True, help="metrics JSON to write")
    parser.add_argument("--conll-output", type=Path, required=True, help="conlleval file to write")
    parser.add_argument("--kind", default="ner", choices=KINDS)
    parser.add_argument("--spans-key", default="chunks")
    parser.add_argument("--scheme", default="IOB2", choices=SCHEMES)
    parser.add_argument("--gpu-id", type=int, default=-1)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--corpus",
        default=None,
        help="tag the docs with this corpus name (a language of a cross-lingual pipeline)",
    )
    args = parser.parse_args(argv)
    try:
        result = evaluate(
            args.model,
            args.data,
            args.conll_output,
            kind=args.kind,
            spans_key=args.spans_key,
            scheme=args.scheme,
            gpu_id=args.gpu_id,
            batch_size=args.batch_size,
            corpus=args.corpus,
        )
    except (OSError, ValueError) as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf8")
    sys.stdout.write(result["report"])
    if not result["spacy_scorer_agrees"]:
        print(
            "Error: spaCy's Scorer disagrees with conlleval: " + "; ".join(result["disagreements"]),
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
