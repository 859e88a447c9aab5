"""Evaluate a trained pipeline with conlleval's counting, cross-checked with spaCy's Scorer.

    spacy lmcrf evaluate MODEL DATA --output metrics.json \\
        --conll-output preds.txt [--kind ner|spans|tags] [--spans-key chunks] \\
        [--scheme IOB2] [--gpu-id -1] [--batch-size 256] \\
        [--displacy-path DIR] [--displacy-limit 25]

(or ``python -m spacy_lmcrf.evaluate`` with the same arguments).

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

``--displacy-path`` writes displaCy's HTML of the predictions of the first
``--displacy-limit`` docs: entities.html (style "ent", kind ner) or spans.html
(style "span", kind spans). spaCy's own ``spacy evaluate --displacy-path`` draws
entities only for a component named by the factory "ner", so it draws nothing for
lm_crf_ner. Token tags have no displaCy view.
"""

import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Union

import spacy
from spacy import displacy
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
# kind -> (displaCy style, file name); the names spacy evaluate --displacy-path uses
DISPLACY = {"ner": ("ent", "entities.html"), "spans": ("span", "spans.html")}


def load_pipeline(model: Union[str, Path]) -> Language:
    """spacy.load, with a clear error for a directory that is not a pipeline.

    model (Union[str, Path]): a pipeline directory or an installed package's name.
    RETURNS (Language): the pipeline.
    """
    path = Path(model)
    if path.exists() and not (path / "config.cfg").is_file():
        raise ValueError(
            f"not a spaCy pipeline (a directory with config.cfg and meta.json): {path}"
        )
    return spacy.load(str(model))  # a str: a package's name or a path


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


def render_displacy(
    docs: Sequence[Doc], kind: str, spans_key: str, output_dir: Path, limit: int = 25
) -> Path:
    """Write displaCy's HTML page of the first docs' entities or spans.

    docs (Sequence[Doc]): the predicted docs.
    kind (str): "ner" (doc.ents, style "ent") or "spans" (doc.spans[spans_key], "span").
    spans_key (str): the spans' key, for kind "spans".
    output_dir (Path): the directory of the page (made if needed).
    limit (int): how many docs, from the first.
    RETURNS (Path): the file written: entities.html or spans.html.
    """
    check_displacy(kind, limit)
    style, file_name = DISPLACY[kind]
    options = {"spans_key": spans_key} if style == "span" else {}
    html = displacy.render(
        list(docs[:limit]), style=style, page=True, jupyter=False, options=options
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / file_name
    path.write_text(html, encoding="utf8")
    return path


def check_displacy(kind: str, limit: int) -> None:
    """Raise ValueError unless displaCy can draw `kind` (ner, spans) and limit is positive."""
    if kind not in DISPLACY:
        raise ValueError(
            f"--displacy-path draws entities (--kind ner) or spans (--kind spans); "
            f"displaCy has no view of --kind {kind}"
        )
    if limit < 1:
        raise ValueError(f"--displacy-limit must be positive, got {limit}")


def evaluate(
    model: Union[str, Path],
    data: Path,
    conll_output: Path,
    *,
    kind: str = "ner",
    spans_key: str = "chunks",
    scheme: str = "IOB2",
    gpu_id: int = -1,
    batch_size: int = 256,
    corpus: Optional[str] = None,
    displacy_path: Optional[Path] = None,
    displacy_limit: int = 25,
) -> Dict[str, Any]:
    """Predict, write the conlleval file, and return the metrics dict (see the module
    doc). With displacy_path, also write displaCy's HTML of the first displacy_limit
    predicted docs there (render_displacy); "displacy_html" names the file."""
    if kind not in KINDS:
        raise ValueError(f"Unknown kind {kind!r}: expected one of {', '.join(KINDS)}")
    if scheme not in SCHEMES:
        raise ValueError(f"Unknown tag scheme {scheme!r}: expected one of {', '.join(SCHEMES)}")
    if displacy_path is not None:
        check_displacy(kind, displacy_limit)
    if gpu_id >= 0:
        spacy.require_gpu(gpu_id)
    nlp = load_pipeline(model)
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
    displacy_file = None
    if displacy_path is not None:
        predicted = [eg.predicted for eg in examples]
        displacy_file = render_displacy(predicted, kind, spans_key, displacy_path, displacy_limit)
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
        "displacy_html": None if displacy_file is None else str(displacy_file),
        "displacy_docs": None if displacy_file is None else min(displacy_limit, len(examples)),
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m spacy_lmcrf.evaluate`: `spacy lmcrf evaluate` (the same arguments);
    returns the exit status."""
    from .cli import run_as_program

    args = sys.argv[1:] if argv is None else argv
    return run_as_program("evaluate", args, "python -m spacy_lmcrf.evaluate")


if __name__ == "__main__":
    sys.exit(main())
