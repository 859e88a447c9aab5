"""The CoNLL shared tasks' span evaluation (``conlleval``), in Python.

Counts like the official ``conlleval`` Perl script (version 2004-01-26): a
chunk is correct when a gold and a predicted chunk start and end at the same
tokens with the same type; precision, recall and FB1 are micro-averaged over
the file and per type; accuracy is the share of tokens whose predicted tag
equals the gold tag. The report prints like the script's default output, with
its ``%6.2f`` rounding. Chunks are decoded with ``tags.tags_to_spans``, which
follows the script's chunk start/end rules, so invalid sequences (``O I-PER``,
``B-PER I-LOC``) are read the way the script reads them.

File format: one token per line, columns separated by ASCII whitespace (a
token may hold other whitespace, e.g. U+00A0), the last two
the gold and the predicted tag (any number of columns before them; all lines
the same number), a blank line between sentences (a line whose first column
is ``-X-`` is a sentence break too). Like the script, every other line counts
as a token, ``-DOCSTART-`` lines included; ``write_conlleval`` never writes
them.

Where this differs from the script, it raises instead of guessing: tags
other than ``O`` and PREFIX-TYPE with a prefix of the scheme (``B``/``I`` in
IOB1/IOB2; ``B``/``I``/``E``/``S`` in BIOES; ``B``/``I``/``L``/``U`` in
BILUO) are errors. For IOB1 and IOB2 files the counts equal the script's; for
BIOES/BILUO they follow the usual IOBES extension of it (``E``/``S`` close a
chunk, ``B``/``S`` open one), which the 2004 script does not know (it merges
``E-X B-X``), so ``write_conlleval`` writes IOB2 unless asked otherwise.

Command line (``python -m spacy_lmcrf.conlleval`` runs the same command)::

    spacy lmcrf conlleval FILE [--scheme IOB2]

prints the report; ``--scheme none`` reads plain tags (e.g. POS) and counts
token accuracy only.
"""

import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple, Union, cast

from spacy.tokens import Doc
from spacy.training import Example

from .tags import SCHEMES, spans_to_tags, tags_to_spans

PathLike = Union[str, Path]

BOUNDARY = "-X-"
KINDS: Tuple[str, ...] = ("ner", "spans", "tags")
# Columns are separated by ASCII whitespace only, as in the script: tokens may hold U+00A0.
_BLANK = " \t\n\r\f\v"
_SEPARATOR = re.compile(r"[ \t\n\r\f\v]+")
_WHITESPACE = re.compile(r"[ \t\n\r\f\v]")


@dataclass
class ConllevalSentence:
    """One sentence of a conlleval file: its tokens, gold and predicted tags."""

    tokens: List[str]
    gold: List[str]
    pred: List[str]
    line: int


@dataclass
class ConllevalCounts:
    """What conlleval counts: tokens, correct tags, and chunks per type."""

    tokens: int = 0
    correct_tags: int = 0
    found_gold: Counter = field(default_factory=Counter)
    found_pred: Counter = field(default_factory=Counter)
    correct: Counter = field(default_factory=Counter)

    def __iadd__(self, other: "ConllevalCounts") -> "ConllevalCounts":
        self.tokens += other.tokens
        self.correct_tags += other.correct_tags
        self.found_gold.update(other.found_gold)
        self.found_pred.update(other.found_pred)
        self.correct.update(other.correct)
        return self

    @property
    def types(self) -> List[str]:
        """The chunk types found in gold or predicted tags, sorted like Perl's sort."""
        return sorted(set(self.found_gold) | set(self.found_pred))


def read_conlleval(path: PathLike) -> List[ConllevalSentence]:
    """Read a conlleval file (see the module docstring) into sentences."""
    sentences: List[ConllevalSentence] = []
    current: Optional[ConllevalSentence] = None
    n_fields: Optional[int] = None
    with open(path, encoding="utf8") as file_:
        for line_no, line in enumerate(file_, start=1):
            fields = _fields(path, line_no, line, n_fields)
            if fields and n_fields is None:
                n_fields = len(fields)
            if not fields or fields[0] == BOUNDARY:
                if current is not None:
                    sentences.append(current)
                    current = None
                continue
            if current is None:
                current = ConllevalSentence(tokens=[], gold=[], pred=[], line=line_no)
            current.tokens.append(fields[0] if len(fields) > 2 else "")
            current.gold.append(fields[-2])
            current.pred.append(fields[-1])
    if current is not None:
        sentences.append(current)
    return sentences


def _fields(path: PathLike, line_no: int, line: str, n_fields: Optional[int]) -> List[str]:
    """A line's columns ([] for a blank line); the count must match earlier lines'."""
    stripped = line.strip(_BLANK)
    if not stripped:
        return []
    fields = _SEPARATOR.split(stripped)
    if n_fields is not None and len(fields) != n_fields:
        raise ValueError(
            f"{path}:{line_no}: expected {n_fields} columns (as on the first line), "
            f"found {len(fields)}: {stripped!r}"
        )
    if len(fields) < 2:
        raise ValueError(
            f"{path}:{line_no}: expected at least 2 columns (gold and predicted "
            f"tag), found {len(fields)}: {stripped!r}"
        )
    return fields


def count_sentence(
    gold: Sequence[str], pred: Sequence[str], scheme: Optional[str] = "IOB2"
) -> ConllevalCounts:
    """Count one sentence; scheme None counts tokens and correct tags only."""
    if len(gold) != len(pred):
        raise ValueError(f"{len(gold)} gold tags but {len(pred)} predicted tags: {gold} / {pred}")
    counts = ConllevalCounts(
        tokens=len(gold),
        correct_tags=sum(g == p for g, p in zip(gold, pred)),
    )
    if scheme is None:
        return counts
    gold_spans = tags_to_spans(gold, scheme)
    pred_spans = tags_to_spans(pred, scheme)
    counts.found_gold.update(label for _, _, label in gold_spans)
    counts.found_pred.update(label for _, _, label in pred_spans)
    counts.correct.update(label for _, _, label in set(gold_spans) & set(pred_spans))
    return counts


def count_sentences(
    sentences: Iterable[ConllevalSentence],
    scheme: Optional[str] = "IOB2",
    path: Optional[PathLike] = None,
) -> ConllevalCounts:
    """Count a file's sentences; errors name the sentence's first line."""
    counts = ConllevalCounts()
    for sentence in sentences:
        try:
            counts += count_sentence(sentence.gold, sentence.pred, scheme)
        except ValueError as err:
            where = f"{path}:{sentence.line}" if path is not None else f"line {sentence.line}"
            raise ValueError(f"{where}: in the sentence starting here: {err}") from None
    return counts


def evaluate_file(path: PathLike, scheme: Optional[str] = "IOB2") -> ConllevalCounts:
    """Read and count a conlleval file."""
    _check_scheme(scheme)
    return count_sentences(read_conlleval(path), scheme, path)


def _check_scheme(scheme: Optional[str]) -> None:
    if scheme is not None and scheme not in SCHEMES:
        raise ValueError(
            f"Unknown tag scheme {scheme!r}: expected one of {', '.join(SCHEMES)} or None"
        )


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"Unknown kind {kind!r}: expected one of {', '.join(KINDS)}")


def prf(correct: int, found_pred: int, found_gold: int) -> Tuple[float, float, float]:
    """Precision, recall and FB1 in percent, computed like conlleval (0 when undefined)."""
    precision = 100 * correct / found_pred if found_pred > 0 else 0.0
    recall = 100 * correct / found_gold if found_gold > 0 else 0.0
    if precision + recall > 0:
        f1 = 2 * precision * recall / (precision + recall)
    else:
        f1 = 0.0
    return precision, recall, f1


def accuracy(counts: ConllevalCounts) -> Optional[float]:
    """Token accuracy in percent; None without tokens (conlleval prints no line then)."""
    return 100 * counts.correct_tags / counts.tokens if counts.tokens else None


def conlleval_metrics(counts: ConllevalCounts) -> Dict[str, Any]:
    """The report's numbers as a dict: percentages (unrounded) and the counts."""
    total_correct = sum(counts.correct.values())
    total_gold = sum(counts.found_gold.values())
    total_pred = sum(counts.found_pred.values())
    precision, recall, f1 = prf(total_correct, total_pred, total_gold)
    per_type = {}
    for label in counts.types:
        p, r, f = prf(counts.correct[label], counts.found_pred[label], counts.found_gold[label])
        per_type[label] = {
            "precision": p,
            "recall": r,
            "f1": f,
            "gold": counts.found_gold[label],
            "found": counts.found_pred[label],
            "correct": counts.correct[label],
        }
    return {
        "tokens": counts.tokens,
        "correct_tags": counts.correct_tags,
        "accuracy": accuracy(counts),
        "gold": total_gold,
        "found": total_pred,
        "correct": total_correct,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "per_type": per_type,
    }


def format_report(counts: ConllevalCounts) -> str:
    """The report, formatted like conlleval's default (non-LaTeX) output."""
    metrics = conlleval_metrics(counts)
    lines = [
        f"processed {metrics['tokens']} tokens with {metrics['gold']} phrases; "
        f"found: {metrics['found']} phrases; correct: {metrics['correct']}."
    ]
    if metrics["tokens"] > 0:
        lines.append(
            "accuracy: %6.2f%%; precision: %6.2f%%; recall: %6.2f%%; FB1: %6.2f"
            % (metrics["accuracy"], metrics["precision"], metrics["recall"], metrics["f1"])
        )
    for label, scores in metrics["per_type"].items():
        lines.append(
            "%17s: precision: %6.2f%%; recall: %6.2f%%; FB1: %6.2f  %d"
            % (label, scores["precision"], scores["recall"], scores["f1"], scores["found"])
        )
    return "\n".join(lines) + "\n"


def format_accuracy(counts: ConllevalCounts) -> str:
    """The report for plain tags (e.g. POS), where chunks mean nothing: token accuracy only."""
    line = f"processed {counts.tokens} tokens"
    rate = accuracy(counts)  # None without tokens
    if rate is not None:
        line += "; accuracy: %6.2f%%" % rate
    return line + "\n"


def _pair(item: Union[Example, Tuple[Doc, Doc]], index: int) -> Tuple[Doc, Doc]:
    if isinstance(item, Example):
        return item.reference, item.predicted
    if isinstance(item, tuple) and len(item) == 2 and all(isinstance(d, Doc) for d in item):
        return item
    raise ValueError(
        f"Item {index}: expected an Example or a (gold Doc, predicted Doc) pair, "
        f"got {type(item).__name__}"
    )


def _check_tokens(gold: Doc, pred: Doc, index: int) -> List[str]:
    words = [token.text for token in gold]
    if [token.text for token in pred] != words:
        raise ValueError(
            f"Item {index}: the predicted doc's tokens differ from the gold doc's; "
            "conlleval needs one prediction per gold token, so run the pipeline on "
            "the gold words (Doc(nlp.vocab, words=...))"
        )
    bad = [w for w in words if not w or _WHITESPACE.search(w) or w == BOUNDARY]
    if bad:
        raise ValueError(
            f"Item {index}: tokens that can't be written to a conlleval file "
            f"(empty, holding ASCII whitespace, or the boundary marker {BOUNDARY!r}): {bad}"
        )
    return words


def _ner_spans(doc: Doc, role: str, index: int) -> List[Tuple[int, int, str]]:
    missing = [token.i for token in doc if token.ent_iob_ == ""]
    if missing:
        raise ValueError(
            f"Item {index}: the {role} doc has no entity annotation on tokens "
            f"{missing[:10]}{'...' if len(missing) > 10 else ''}"
        )
    return [(ent.start, ent.end, ent.label_) for ent in doc.ents]


def _group_spans(doc: Doc, role: str, index: int, spans_key: str) -> List[Tuple[int, int, str]]:
    if spans_key not in doc.spans:
        raise ValueError(f"Item {index}: the {role} doc has no doc.spans[{spans_key!r}]")
    return [(span.start, span.end, span.label_) for span in doc.spans[spans_key]]


def _token_tags(doc: Doc, role: str, index: int) -> List[str]:
    tags = [token.tag_ for token in doc]
    missing = [i for i, tag in enumerate(tags) if not tag or _WHITESPACE.search(tag)]
    if missing:
        raise ValueError(
            f"Item {index}: the {role} doc has empty or whitespace tags on tokens "
            f"{missing[:10]}{'...' if len(missing) > 10 else ''}"
        )
    return tags


def conlleval_rows(
    item: Union[Example, Tuple[Doc, Doc]],
    kind: str = "ner",
    *,
    spans_key: str = "chunks",
    scheme: str = "IOB2",
    index: int = 0,
) -> Tuple[List[str], List[str], List[str]]:
    """The (words, gold tags, predicted tags) of one example, for a conlleval file.

    kind "ner" reads doc.ents (every token must carry entity annotation), "spans"
    doc.spans[spans_key] (non-overlapping), both encoded in `scheme`; "tags"
    reads token.tag_ (none may be empty). index only labels error messages.
    """
    _check_kind(kind)
    gold, pred = _pair(item, index)
    words = _check_tokens(gold, pred, index)
    if kind == "tags":
        return words, _token_tags(gold, "gold", index), _token_tags(pred, "predicted", index)
    tags = []
    for doc, role in ((gold, "gold"), (pred, "predicted")):
        if kind == "ner":
            spans = _ner_spans(doc, role, index)
        else:
            spans = _group_spans(doc, role, index, spans_key)
        try:
            # no token is missing, so no tag is None
            tags.append(cast(List[str], spans_to_tags(len(doc), spans, scheme)))
        except ValueError as err:
            raise ValueError(f"Item {index}: the {role} spans: {err}") from None
    return words, tags[0], tags[1]


def write_conlleval(
    examples: Iterable[Union[Example, Tuple[Doc, Doc]]],
    path: PathLike,
    kind: str = "ner",
    *,
    spans_key: str = "chunks",
    scheme: str = "IOB2",
) -> Tuple[int, int]:
    """Write `token gold predicted` lines, a blank line after each doc; return
    (docs written, tokens written).

    examples: Examples (gold from the reference, prediction from the predicted
    doc) or (gold Doc, predicted Doc) pairs, tokenized alike. Each doc is one
    block (a doc's spans never cross a block); empty docs have no lines. See
    conlleval_rows for kind, spans_key and scheme.
    """
    _check_kind(kind)
    _check_scheme(scheme)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    n_docs = n_tokens = 0
    with path.open("w", encoding="utf8") as file_:
        for i, item in enumerate(examples):
            words, gold, pred = conlleval_rows(
                item, kind, spans_key=spans_key, scheme=scheme, index=i
            )
            if not words:
                continue
            file_.writelines(f"{w} {g} {p}\n" for w, g, p in zip(words, gold, pred))
            file_.write("\n")
            n_docs += 1
            n_tokens += len(words)
    return n_docs, n_tokens


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m spacy_lmcrf.conlleval`: `spacy lmcrf conlleval` (the same arguments);
    returns the exit status."""
    from .cli import run_as_program

    args = sys.argv[1:] if argv is None else argv
    return run_as_program("conlleval", args, "python -m spacy_lmcrf.conlleval")


if __name__ == "__main__":
    sys.exit(main())
