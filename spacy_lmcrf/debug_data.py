"""`spacy lmcrf debug-data`: what `spacy debug data` checks for spaCy's ner, spancat and
tagger, for our CRF components.

    python -m spacy lmcrf debug-data configs/lmcrf_ner.cfg \\
        --paths.train corpus/train.spacy --paths.dev corpus/dev.spacy

spaCy's `debug data` runs its NER, span and tagging checks only for components whose
factory is "ner", "spancat" / "spancat_singlelabel" or "tagger", so for `lm_crf_ner`,
`lm_crf_spans` and `lm_crf_tagger` it reports nothing. This command reads the corpora as
training does (the config's [corpora] readers, [training] train_corpus and dev_corpus) and,
for every CRF component of the pipeline, checks the data as that component reads it:
labels in train and dev, annotation that is missing (unknown to the CRF, not "O"),
whitespace in spans, overlapping spans, the sequences the CRF runs over (sentences, or
windows of max_length tokens) and spans that cross them. A failed check exits with 1.
"""

import sys
from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import numpy
import typer
from spacy import util
from spacy.attrs import ENT_IOB, IDX, IS_SPACE, ORTH, SENT_START
from spacy.cli._util import Arg, Opt, parse_config_overrides, show_validation_error
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example
from wasabi import MESSAGES, Printer

from .ml.featurize.segments import doc_segments
from .pipeline import CRFEntityRecognizer, CRFSpanLabeler, CRFTagger
from .training.corpus import doc_corpus

# spaCy's debug data: a label with at most this many training examples is "low data"
NEW_LABEL_THRESHOLD = 50
# spaCy's debug data: fewer training docs than these fail / warn
BLANK_MODEL_MIN_THRESHOLD = 100
BLANK_MODEL_THRESHOLD = 2000
# problems listed one by one with --verbose
N_SHOWN = 5
# overrides such as --paths.train reach the command as extra arguments
CONTEXT_SETTINGS = {"allow_extra_args": True, "ignore_unknown_options": True}
# each kind's (plural of what it labels, name of its annotation)
KIND_NAMES = {"ner": ("entities", "NER"), "spans": ("spans", "span"), "tagger": ("tags", "tag")}

GOOD, INFO, WARN, FAIL = MESSAGES.GOOD, MESSAGES.INFO, MESSAGES.WARN, MESSAGES.FAIL


@dataclass(frozen=True)
class Finding:
    """One line of the report: level is wasabi's "good", "info", "warn" or "fail";
    details (e.g. the problem spans) are printed with --verbose."""

    level: str
    text: str
    details: Tuple[str, ...] = ()


@dataclass(frozen=True)
class LabelerSpec:
    """What the checks need to know of one CRF component.

    name (str): the component's name in the pipeline.
    factory (str): its factory ("lm_crf_ner", ...).
    kind (str): "ner" (gold from doc.ents), "spans" (doc.spans[spans_key]) or "tagger"
        (token.tag_).
    spans_key (Optional[str]): the span group a "spans" component reads.
    max_length (Optional[int]): the longest sequence the CRF runs over: a sentence, or a
        window of this many tokens of a doc without sentence boundaries.
    context_length (Optional[int]): the smallest max_length of any of its layers: the
        longest stretch of a doc its model reads at once.
    corpus (Optional[str]): the corpus it is restricted to (docs of other corpora are
        not its), or None.
    """

    name: str
    factory: str
    kind: str
    spans_key: Optional[str] = None
    max_length: Optional[int] = None
    context_length: Optional[int] = None
    corpus: Optional[str] = None

    @property
    def target(self) -> str:
        """Where the component's gold annotation is read from."""
        if self.kind == "ner":
            return "doc.ents"
        if self.kind == "spans":
            return f"doc.spans[{self.spans_key!r}]"
        return "token.tag_"


@dataclass
class AnnotationStats:
    """One component's view of one corpus, counted in one pass over its examples.

    Problems are kept as "doc N: ..." strings; their number is the count reported.
    """

    n_examples: int = 0
    n_mine: int = 0
    n_annotated: int = 0
    labels: Counter = field(default_factory=Counter)
    n_unknown_tokens: int = 0
    n_docs_with_unknown: int = 0
    whitespace_spans: List[str] = field(default_factory=list)
    overlapping_spans: List[str] = field(default_factory=list)
    misaligned_spans: List[str] = field(default_factory=list)
    crossing_sequences: List[str] = field(default_factory=list)
    crossing_sentences: List[str] = field(default_factory=list)
    long_unsplit_docs: List[str] = field(default_factory=list)
    long_sentences: List[str] = field(default_factory=list)
    n_sentences_not_read: int = 0


def labeler_specs(nlp: Language) -> List[LabelerSpec]:
    """The CRF components of nlp's pipeline, in pipeline order."""
    specs = []
    for name, component in nlp.pipeline:
        if isinstance(component, CRFEntityRecognizer):
            kind, spans_key = "ner", None
        elif isinstance(component, CRFSpanLabeler):
            kind, spans_key = "spans", component.cfg["spans_key"]
        elif isinstance(component, CRFTagger):
            kind, spans_key = "tagger", None
        else:
            continue
        attrs = [node.attrs.get("max_length") for node in component.model.walk()]
        lengths: List[int] = [n for n in attrs if isinstance(n, int) and n >= 1]
        crf_length = component.model.attrs.get("max_length")
        specs.append(
            LabelerSpec(
                name=name,
                factory=nlp.get_pipe_meta(name).factory,
                kind=kind,
                spans_key=spans_key,
                max_length=crf_length if isinstance(crf_length, int) else None,
                context_length=min(lengths) if lengths else None,
                corpus=component.cfg.get("corpus"),
            )
        )
    return specs


def is_mine(spec: LabelerSpec, doc: Doc) -> bool:
    """Whether the component reads doc (its corpus setting, as CRFSequenceLabeler.is_mine)."""
    return spec.corpus is None or doc_corpus(doc) in (None, spec.corpus)


def has_annotation(spec: LabelerSpec, doc: Doc) -> bool:
    """Whether doc carries the component's annotation at all; other docs add no loss."""
    if spec.kind == "ner":
        return doc.has_annotation("ENT_IOB")
    if spec.kind == "spans":
        return spec.spans_key in doc.spans
    return doc.has_annotation("TAG")


def gold_spans(spec: LabelerSpec, doc: Doc) -> List[Span]:
    """The gold spans of an annotated reference doc (none for a tagger)."""
    if spec.kind == "ner":
        return list(doc.ents)
    if spec.kind == "spans":
        return list(doc.spans[spec.spans_key])
    return []


def unknown_tokens(spec: LabelerSpec, doc: Doc) -> int:
    """Tokens of an annotated doc without a gold tag, which the CRF marginalises: for NER,
    tokens whose ENT_IOB is unset (whitespace tokens excepted: they are read as O); for a
    tagger, tokens without a tag. A span group has no unknown tokens."""
    if spec.kind == "ner":
        unset = doc.to_array(ENT_IOB) == 0
        return int((unset & ~doc.to_array(IS_SPACE).astype(bool)).sum())
    if spec.kind == "tagger":
        return sum(1 for token in doc if not token.tag_)
    return 0


def whitespace_problem(span: Span) -> Optional[str]:
    """Why a span's whitespace makes it one the component never predicts (it decodes
    whitespace tokens as O), or None."""
    if span[0].is_space or span[-1].is_space:
        return "starts or ends on a whitespace token"
    if any(token.is_space for token in span):
        return "contains a whitespace token"
    if span.text != span.text.strip():
        return "has leading or trailing whitespace"
    return None


def overlapping(spans: Iterable[Span]) -> List[Tuple[Span, Span]]:
    """The pairs of spans (sorted by start) where one starts before the other ends."""
    pairs = []
    ordered = sorted(spans, key=lambda span: (span.start, span.end))
    furthest: Optional[Span] = None
    for span in ordered:
        if furthest is not None and span.start < furthest.end:
            pairs.append((furthest, span))
        if furthest is None or span.end > furthest.end:
            furthest = span
    return pairs


def same_tokens(example: Example) -> bool:
    """Whether the predicted doc has the reference's tokens (a reader that keeps the
    corpus's tokens), so that token indices mean the same in both."""
    predicted, reference = example.predicted, example.reference
    return len(predicted) == len(reference) and bool(
        numpy.array_equal(predicted.to_array([ORTH, IDX]), reference.to_array([ORTH, IDX]))
    )


def sequence_starts(doc: Doc, max_length: int) -> List[int]:
    """Where the CRF starts a new sequence inside doc (sentence starts and window cuts)."""
    return [start for start, _ in doc_segments(doc, max_length) if start > 0]


def crosses(starts: Sequence[int], start: int, end: int) -> bool:
    """Whether a sorted list of sequence starts has one strictly inside [start, end)."""
    i = bisect_right(starts, start)
    return i < len(starts) and starts[i] < end


def describe(i: int, span: Span, note: str = "") -> str:
    """A problem span as the report lists it: its doc, text, label and tokens."""
    text = f"doc {i}: {span.text!r} ({span.label_ or 'no label'}, tokens {span.start}-{span.end})"
    return f"{text} {note}" if note else text


def collect_stats(spec: LabelerSpec, examples: Iterable[Example]) -> AnnotationStats:
    """Count what the checks report about one component over one corpus's examples."""
    stats = AnnotationStats()
    for i, example in enumerate(examples):
        stats.n_examples += 1
        predicted, reference = example.predicted, example.reference
        if not is_mine(spec, predicted):
            continue
        stats.n_mine += 1
        count_sequences(spec, stats, i, example)
        if not has_annotation(spec, reference):
            continue
        stats.n_annotated += 1
        n_unknown = unknown_tokens(spec, reference)
        stats.n_unknown_tokens += n_unknown
        stats.n_docs_with_unknown += bool(n_unknown)
        if spec.kind == "tagger":
            stats.labels.update(token.tag_ for token in reference if token.tag_)
            continue
        spans = gold_spans(spec, reference)
        stats.labels.update(span.label_ for span in spans)
        count_span_problems(spec, stats, i, example, spans)
    return stats


def count_sequences(spec: LabelerSpec, stats: AnnotationStats, i: int, example: Example) -> None:
    """Count the docs and sentences the model reads in windows: the predicted doc (what
    the component runs on) without sentence boundaries and longer than its
    context_length, or with a sentence longer than that."""
    length = spec.context_length
    predicted, reference = example.predicted, example.reference
    if length is None:
        return
    if not predicted.has_annotation("SENT_START"):
        if len(predicted) > length:
            stats.long_unsplit_docs.append(f"doc {i}: {len(predicted)} tokens")
            if reference.has_annotation("SENT_START"):
                stats.n_sentences_not_read += 1
        return
    for sent in predicted.sents:
        if len(sent) > length:
            stats.long_sentences.append(f"doc {i}: a sentence of {len(sent)} tokens")


def count_span_problems(
    spec: LabelerSpec, stats: AnnotationStats, i: int, example: Example, spans: List[Span]
) -> None:
    """Count the gold spans with whitespace, overlapping, not aligned to the predicted
    tokens, crossing the CRF's sequences, or crossing the reference's sentences."""
    predicted, reference = example.predicted, example.reference
    for span in spans:
        problem = whitespace_problem(span)
        if problem:
            stats.whitespace_spans.append(describe(i, span, problem))
    if spec.kind == "spans":
        stats.overlapping_spans.extend(
            f"{describe(i, a)} and {b.text!r} ({b.label_}, tokens {b.start}-{b.end})"
            for a, b in overlapping(spans)
        )
    if reference.has_annotation("SENT_START"):
        sent_starts = reference.to_array(SENT_START) == 1
        stats.crossing_sentences.extend(
            describe(i, span) for span in spans if sent_starts[span.start + 1 : span.end].any()
        )
    if same_tokens(example):
        on_predicted: List[Tuple[Span, Tuple[int, int]]] = [
            (span, (span.start, span.end)) for span in spans
        ]
    else:
        on_predicted = []
        for span in spans:
            aligned = example.get_aligned_spans_y2x([span], allow_overlap=True)
            if aligned:
                on_predicted.append((span, (aligned[0].start, aligned[0].end)))
            else:
                stats.misaligned_spans.append(describe(i, span))
    if spec.max_length is not None:
        starts = sequence_starts(predicted, spec.max_length)
        stats.crossing_sequences.extend(
            describe(i, span) for span, (start, end) in on_predicted if crosses(starts, start, end)
        )


def unlabelled_spans(stats: AnnotationStats) -> bool:
    """Whether the corpus has gold spans without a label (counted under "")."""
    return stats.labels[""] > 0


def check_annotation(
    spec: LabelerSpec, train: AnnotationStats, dev: AnnotationStats
) -> List[Finding]:
    """Docs the component reads and how many carry its annotation; nothing to learn fails."""
    what = KIND_NAMES[spec.kind][1]
    findings = []
    for split, stats in (("train", train), ("dev", dev)):
        n_other = stats.n_examples - stats.n_mine
        if n_other:
            findings.append(
                Finding(
                    INFO,
                    f"{n_other} {split} docs belong to other corpora than {spec.corpus!r}: "
                    "the component does not read them",
                )
            )
        n_bare = stats.n_mine - stats.n_annotated
        if n_bare and stats.n_annotated:
            findings.append(
                Finding(
                    INFO,
                    f"{n_bare} of {stats.n_mine} {split} docs carry no {what} annotation "
                    f"({spec.target}): the component skips them (no loss, not scored as O)",
                )
            )
    if train.n_mine and not train.n_annotated:
        findings.append(
            Finding(
                FAIL,
                f"None of the {train.n_mine} training docs carries {what} annotation "
                f"({spec.target}): nothing to learn, nlp.initialize fails",
            )
        )
    if dev.n_mine and not dev.n_annotated:
        findings.append(
            Finding(WARN, f"None of the {dev.n_mine} dev docs carries {what} annotation: no score")
        )
    return findings


def check_labels(
    spec: LabelerSpec,
    train: AnnotationStats,
    dev: AnnotationStats,
    *,
    min_count: int = NEW_LABEL_THRESHOLD,
) -> List[Finding]:
    """Labels in train, labels of dev that training never shows (the component cannot
    predict them), labels with few training examples (not for tags, as spaCy's tagger
    check), spans without a label."""
    plural = KIND_NAMES[spec.kind][0]
    findings = []
    if unlabelled_spans(train) or unlabelled_spans(dev):
        findings.append(Finding(FAIL, f"Gold {plural} without a label: the CRF cannot encode them"))
    unseen = sorted(set(dev.labels) - set(train.labels) - {""})
    if unseen:
        findings.append(
            Finding(
                WARN,
                f"{len(unseen)} label(s) in dev but not in train, never predicted: "
                + ", ".join(f"'{label}' ({dev.labels[label]})" for label in unseen),
            )
        )
    if spec.kind == "tagger" or not train.labels:
        return findings
    rare = [(label, n) for label, n in sorted(train.labels.items()) if label and n <= min_count]
    for label, n in rare:
        findings.append(Finding(WARN, f"Low number of examples for label '{label}' ({n})"))
    if not rare:
        findings.append(Finding(GOOD, f"Good amount of examples for all labels (> {min_count})"))
    return findings


def check_unknown_tokens(
    spec: LabelerSpec, train: AnnotationStats, dev: AnnotationStats
) -> List[Finding]:
    """Tokens of annotated docs without a gold tag: the CRF treats them as unknown
    (marginalises their tag), not as O, so say how many."""
    if spec.kind == "spans":
        return []
    attr = "ENT_IOB unset" if spec.kind == "ner" else "empty token.tag_"
    findings = []
    for split, stats in (("train", train), ("dev", dev)):
        if stats.n_unknown_tokens:
            findings.append(
                Finding(
                    WARN,
                    f"{stats.n_unknown_tokens} {split} token(s) in {stats.n_docs_with_unknown} "
                    f"annotated doc(s) have no gold tag ({attr}): treated as unknown "
                    "(their tag is marginalised), not as O",
                )
            )
    if not findings:
        findings.append(Finding(GOOD, "Every token of the annotated docs has a gold tag"))
    return findings


def check_whitespace(
    spec: LabelerSpec, train: AnnotationStats, dev: AnnotationStats
) -> List[Finding]:
    """Spans the component never predicts because of whitespace: failed in train (as
    spaCy's debug data fails whitespace entities), warned in dev (lost recall)."""
    if spec.kind == "tagger":
        return []
    plural = KIND_NAMES[spec.kind][0]
    findings = []
    for split, stats, level in (("train", train, FAIL), ("dev", dev, WARN)):
        if stats.whitespace_spans:
            findings.append(
                Finding(
                    level,
                    f"{len(stats.whitespace_spans)} {split} {plural} start or end on whitespace "
                    "or contain it: the component never predicts such a span",
                    tuple(stats.whitespace_spans[:N_SHOWN]),
                )
            )
    if not findings:
        findings.append(
            Finding(
                GOOD, f"No {plural} consisting of, containing or starting/ending with whitespace"
            )
        )
    return findings


def check_overlaps(
    spec: LabelerSpec, train: AnnotationStats, dev: AnnotationStats
) -> List[Finding]:
    """Overlapping spans of lm_crf_spans: one tag per token cannot encode them, so
    training stops on them (train: fail) and at most one of each pair is predicted (dev)."""
    if spec.kind != "spans":
        return []
    findings = []
    for split, stats, level in (("train", train, FAIL), ("dev", dev, WARN)):
        if stats.overlapping_spans:
            findings.append(
                Finding(
                    level,
                    f"{len(stats.overlapping_spans)} pair(s) of overlapping {split} spans in "
                    f"{spec.target}: not allowed (one tag per token)",
                    tuple(stats.overlapping_spans[:N_SHOWN]),
                )
            )
    if not findings:
        findings.append(Finding(GOOD, "No overlapping spans"))
    return findings


def check_alignment(
    spec: LabelerSpec, train: AnnotationStats, dev: AnnotationStats
) -> List[Finding]:
    """Gold spans without predicted tokens that start and end where they do (a reader
    that re-tokenises): the component trains on their tokens as unknown."""
    findings = []
    plural = KIND_NAMES[spec.kind][0]
    for split, stats in (("train", train), ("dev", dev)):
        if stats.misaligned_spans:
            findings.append(
                Finding(
                    WARN,
                    f"{len(stats.misaligned_spans)} {split} {plural} do not align to the "
                    "predicted tokens: their tokens are unknown in training, and they cannot "
                    "be predicted",
                    tuple(stats.misaligned_spans[:N_SHOWN]),
                )
            )
    return findings


def check_sequences(
    spec: LabelerSpec, train: AnnotationStats, dev: AnnotationStats
) -> List[Finding]:
    """Spans crossing the sequences the CRF runs over (sentences of the predicted doc, or
    windows of max_length tokens): the CRF cannot decode them, and in training their
    tags are unknown (tags.unknown_across_cuts), so they teach nothing. Spans crossing
    the reference's sentence boundaries are warned of, as spaCy does."""
    if spec.kind == "tagger" or spec.max_length is None:
        return []
    plural = KIND_NAMES[spec.kind][0]
    findings = []
    for split, stats, level in (("train", train, WARN), ("dev", dev, WARN)):
        if stats.crossing_sequences:
            findings.append(
                Finding(
                    level,
                    f"{len(stats.crossing_sequences)} {split} {plural} cross the sequences the "
                    f"CRF reads (sentences, or windows of {spec.max_length} tokens): it cannot "
                    + (
                        "learn them (their tags are left unknown)"
                        if split == "train"
                        else "find them"
                    ),
                    tuple(stats.crossing_sequences[:N_SHOWN]),
                )
            )
    if not findings:
        findings.append(Finding(GOOD, f"No {plural} crossing the sequences the CRF reads"))
    n_sentences = len(train.crossing_sentences) + len(dev.crossing_sentences)
    if n_sentences:
        findings.append(
            Finding(
                WARN,
                f"{n_sentences} {plural} crossing sentence boundaries "
                f"({len(train.crossing_sentences)} train, {len(dev.crossing_sentences)} dev)",
                tuple((train.crossing_sentences + dev.crossing_sentences)[:N_SHOWN]),
            )
        )
    else:
        findings.append(Finding(GOOD, f"No {plural} crossing sentence boundaries"))
    return findings


def check_windows(spec: LabelerSpec, train: AnnotationStats, dev: AnnotationStats) -> List[Finding]:
    """Docs without sentence boundaries, and sentences, longer than the model reads at
    once: they are cut into windows of context_length tokens, without context across."""
    length = spec.context_length
    if length is None:
        return [Finding(INFO, "The model has no max_length: docs are read whole")]
    findings = []
    for split, stats in (("train", train), ("dev", dev)):
        if stats.long_unsplit_docs:
            dropped = (
                f"; {stats.n_sentences_not_read} of them have sentences in the corpus, "
                "which the reader does not pass on"
                if stats.n_sentences_not_read
                else ""
            )
            findings.append(
                Finding(
                    WARN,
                    f"{len(stats.long_unsplit_docs)} {split} doc(s) without sentence boundaries "
                    f"are longer than max_length ({length}): cut into windows of {length} "
                    f"tokens{dropped}",
                    tuple(stats.long_unsplit_docs[:N_SHOWN]),
                )
            )
        if stats.long_sentences:
            findings.append(
                Finding(
                    WARN,
                    f"{len(stats.long_sentences)} {split} sentence(s) longer than max_length "
                    f"({length}): cut into windows of {length} tokens",
                    tuple(stats.long_sentences[:N_SHOWN]),
                )
            )
    if not findings:
        findings.append(
            Finding(GOOD, f"Every doc is read by sentence or fits in max_length ({length})")
        )
    return findings


def component_findings(
    spec: LabelerSpec,
    train: AnnotationStats,
    dev: AnnotationStats,
    *,
    min_count: int = NEW_LABEL_THRESHOLD,
) -> List[Finding]:
    """Every check of one component, in the order they are printed."""
    findings = check_annotation(spec, train, dev)
    if not train.n_annotated:
        return findings
    return (
        findings
        + check_labels(spec, train, dev, min_count=min_count)
        + check_unknown_tokens(spec, train, dev)
        + check_whitespace(spec, train, dev)
        + check_overlaps(spec, train, dev)
        + check_alignment(spec, train, dev)
        + check_sequences(spec, train, dev)
        + check_windows(spec, train, dev)
    )


def corpus_findings(
    train: Sequence[Example],
    dev: Sequence[Example],
    *,
    min_docs: int = BLANK_MODEL_MIN_THRESHOLD,
    enough_docs: int = BLANK_MODEL_THRESHOLD,
) -> List[Finding]:
    """The checks of the corpora as a whole: empty corpora, spaCy's low number of
    training docs, texts in both, and examples predicted on other tokens than the
    corpus's (a reader that re-tokenises, such as spacy.Corpus.v1)."""
    findings = [Finding(INFO, f"{len(train)} training docs, {len(dev)} evaluation docs")]
    if not train:
        findings.append(Finding(FAIL, "No training docs"))
    if not dev:
        findings.append(Finding(FAIL, "No evaluation docs"))
    if not train or not dev:
        return findings
    overlap = len({eg.reference.text for eg in train} & {eg.reference.text for eg in dev})
    if overlap:
        findings.append(Finding(WARN, f"{overlap} training texts also in evaluation data"))
    else:
        findings.append(Finding(GOOD, "No overlap between training and evaluation data"))
    if len(train) < enough_docs:
        level = FAIL if len(train) < min_docs else WARN
        findings.append(
            Finding(level, f"Low number of examples to train a new pipeline ({len(train)})")
        )
    retokenised = {
        split: sum(not same_tokens(eg) for eg in examples)
        for split, examples in (("train", train), ("dev", dev))
    }
    for split, n in retokenised.items():
        if n:
            findings.append(
                Finding(
                    WARN,
                    f"{n} {split} examples are predicted on other tokens than the corpus's "
                    "(the reader re-tokenises the text; spacy_lmcrf.GoldTokenCorpus.v1 keeps "
                    "the corpus's tokens)",
                )
            )
    if not any(retokenised.values()):
        findings.append(Finding(GOOD, "Every example is predicted on the corpus's own tokens"))
    return findings


def print_findings(msg: Printer, findings: Iterable[Finding], verbose: bool = False) -> None:
    """Print each finding with wasabi's icon for its level; details only if verbose."""
    printers: Dict[str, Callable[..., Any]] = {
        GOOD: msg.good,
        INFO: msg.info,
        WARN: msg.warn,
        FAIL: msg.fail,
    }
    for finding in findings:
        printers[finding.level](finding.text)
        for detail in finding.details:
            msg.text(f"  {detail}", show=verbose)


def print_label_counts(
    msg: Printer, spec: LabelerSpec, train: AnnotationStats, dev: AnnotationStats
) -> None:
    """A table of each label's (tag's) number of gold spans (tokens) in train and dev."""
    labels = sorted(set(train.labels) | set(dev.labels), key=lambda l: (-train.labels[l], l))
    msg.info(f"{len(set(train.labels) - {''})} label(s) in train data")
    if labels:
        msg.table(
            [(label or "(no label)", train.labels[label], dev.labels[label]) for label in labels],
            header=("Label" if spec.kind != "tagger" else "Tag", "Train", "Dev"),
            aligns=("l", "r", "r"),
        )


def read_corpora(nlp: Language) -> Tuple[List[Example], List[Example]]:
    """The training and dev examples, read by the config's [corpora] readers as training
    reads them ([training] train_corpus and dev_corpus)."""
    config = nlp.config.interpolate()
    dot_names = [config["training"]["train_corpus"], config["training"]["dev_corpus"]]
    train_corpus, dev_corpus = util.resolve_dot_names(config, dot_names)
    return list(train_corpus(nlp)), list(dev_corpus(nlp))


def debug_data(
    config_path: Path,
    *,
    config_overrides: Dict[str, Any] = {},  # noqa: B006 (read, never changed)
    verbose: bool = False,
    no_format: bool = True,
    ignore_warnings: bool = False,
    silent: bool = True,
) -> Counter:
    """Check the training and dev data of a config's pipeline for its CRF components and
    print the report. Returns wasabi's counts of good, info, warn and fail messages.

    config_path (Path): the training config.
    config_overrides (Dict[str, Any]): e.g. {"paths.train": "train.spacy"}.
    verbose (bool): also list the problem spans and docs.
    no_format (bool): do not pretty-print.
    ignore_warnings (bool): count warnings, but do not print them.
    silent (bool): print nothing.
    """
    msg = Printer(no_print=silent, pretty=not no_format, ignore_warnings=ignore_warnings)
    with show_validation_error(config_path):
        config = util.load_config(config_path, overrides=config_overrides)
        nlp = util.load_model_from_config(config, auto_fill=True)
    msg.divider("Data file validation")
    try:
        train, dev = read_corpora(nlp)
    except (ValueError, OSError) as error:
        msg.fail("The corpora cannot be read", str(error))
        sys.exit(1)
    msg.good("Corpus is loadable")
    specs = labeler_specs(nlp)
    msg.divider("Training stats")
    msg.text(f"Language: {nlp.lang}")
    msg.text(f"Training pipeline: {', '.join(nlp.pipe_names)}")
    print_findings(msg, corpus_findings(train, dev), verbose)
    ours = {spec.name for spec in specs}
    for name in nlp.pipe_names:
        if name not in ours:
            factory = nlp.get_pipe_meta(name).factory
            msg.info(f"'{name}' ({factory}) is not a CRF component: `spacy debug data` checks it")
    if not specs:
        msg.warn("No lm_crf_ner, lm_crf_spans or lm_crf_tagger component in the pipeline")
    for spec in specs:
        msg.divider(f"{spec.name} ({spec.factory}: {spec.target})")
        train_stats, dev_stats = collect_stats(spec, train), collect_stats(spec, dev)
        print_label_counts(msg, spec, train_stats, dev_stats)
        print_findings(msg, component_findings(spec, train_stats, dev_stats), verbose)
    return print_summary(msg)


def print_summary(msg: Printer) -> Counter:
    """spaCy's summary: how many checks passed, warnings and errors. Returns the counts
    of the messages before it."""
    counts = Counter(msg.counts)
    msg.divider("Summary")
    if counts[GOOD]:
        msg.good(f"{counts[GOOD]} {'check' if counts[GOOD] == 1 else 'checks'} passed")
    if counts[WARN]:
        msg.warn(f"{counts[WARN]} {'warning' if counts[WARN] == 1 else 'warnings'}")
    if counts[FAIL]:
        msg.fail(f"{counts[FAIL]} {'error' if counts[FAIL] == 1 else 'errors'}")
    return counts


def debug_data_cli(
    ctx: typer.Context,
    config_path: Path = Arg(..., help="Path to config file", exists=True, allow_dash=False),
    verbose: bool = Opt(
        False, "--verbose", "-V", help="List the docs and spans behind each problem"
    ),
    no_format: bool = Opt(False, "--no-format", "-NF", help="Don't pretty-print the results"),
    ignore_warnings: bool = Opt(
        False, "--ignore-warnings", "-IW", help="Ignore warnings, only show stats and errors"
    ),
):
    """Analyze the training and dev data for the CRF components (lm_crf_ner,
    lm_crf_spans, lm_crf_tagger), as `spacy debug data` does for spaCy's ner, spancat
    and tagger, whose checks it runs for those factories only. Reads the corpora with
    the config's corpus readers, as training does; overrides as in `spacy train` (--paths.train
    train.spacy --paths.dev dev.spacy). Reports label counts, labels missing from
    train, annotation missing (unknown to the CRF, not O), whitespace and overlapping
    spans, and spans crossing the sentences or windows the CRF reads. Exits with 1 if
    a check fails."""
    overrides = parse_config_overrides(ctx.args)
    counts = debug_data(
        config_path,
        config_overrides=overrides,
        verbose=verbose,
        no_format=no_format,
        ignore_warnings=ignore_warnings,
        silent=False,
    )
    if counts[FAIL]:
        sys.exit(1)
