"""Fuzz a trained pipeline's CRF span labelers with seeded adversarial documents.

    OMP_NUM_THREADS=1 python benchmarks/scripts/fuzz.py --work-dir training/fuzz \
        --out metrics/fuzz.json

A random.Random(--seed) makes --n-docs documents a tester would: empty and whitespace-only
text, newlines and tabs, very long documents, single tokens of thousands of characters
(base64, minified JSON), CJK, emoji, right-to-left text, combining and zero-width
characters, control characters, digits, punctuation runs, mixed scripts, repeated words,
sentences of the shipped CoNLL-2003 sample (so that entities appear), Docs built from
words and spaces with odd spacing, with and without preset sentence boundaries.

They go through the pipeline (`nlp.pipe`, --batch-size, in a seeded shuffled order) and
every `lm_crf_ner` and `lm_crf_spans` component's output is checked:
- spans lie inside their doc (start < end <= len(doc)) and do not overlap;
- `doc.spans[spans_key]` of the NER holds exactly doc.ents (same spans and labels);
- `attrs["scores"]`: one score per span, finite and in [0, 1];
- no whitespace token inside a span;
- every token annotated: ent_iob_ is "B", "I" or "O";
- batch independence: on --batch-sample docs, the annotations are the same when a doc is
  processed alone (scores within 1e-4);
- no exception: exceptions are counted by type, with a few example inputs.

--model takes a saved pipeline; without it a small LM-LSTM-CRF pipeline (`lm_crf_ner`
and a chunking `lm_crf_spans`, tiny sizes, the sample's GloVe rows) is trained for
--train-steps batches on assets/conll03_sample and cached under --work-dir. Seconds and
docs/s time the pipeline only (`nlp.pipe` over ready-made Docs, no generation, no
checks; a batch that raises is retried doc by doc, and both count). The address space may
grow by --max-memory-gib GiB only (RLIMIT_AS), so that a runaway allocation becomes a
counted exception rather than a visit from the OOM killer. The exit status is 1 when any
check fails or any exception is raised.
"""

import argparse
import base64
import gc
import json
import math
import random
import resource
import sys
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy
import spacy
from spacy.language import Language
from spacy.tokens import Doc, Span
from spacy.training import Example

from common import ROOT, provenance, write_json

SAMPLE = ROOT / "assets" / "conll03_sample"
GLOVE = ROOT / "assets" / "glove_sample" / "glove.6B.50d.sample.txt"
FACTORIES = ("lm_crf_ner", "lm_crf_spans")
TINY_TOK2VEC = {"char_dim": 16, "char_hidden": 32, "width": 32, "min_freq": 1, "dropout": 0.0}
SCORE_TOLERANCE = 1e-4
N_EXAMPLES = 3
MAX_TOKEN_CHARS = 4900

# -- the generator's ingredients -----------------------------------------------------------

WHITESPACE = [
    " ",
    "  ",
    "\t",
    "\n",
    "\n\n",
    "\r\n",
    "\r",
    "\x0b",
    "\x0c",
    "\u00a0",
    "\u2003",
    "\u3000",
    "\u2028",
    "\u2029",
    "\u1680",
    "\u202f",
]
ZERO_WIDTH = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]
CONTROL = [chr(c) for c in range(32) if chr(c) not in "\t\n\r"] + [chr(c) for c in range(127, 160)]
CJK = [
    "中文",
    "日本語",
    "東京",
    "北京大学",
    "한국어",
    "서울",
    "漢字",
    "カタカナ",
    "ひらがな",
    "上海市",
    "。",
    "、",
]
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🇩🇪", "🇺🇸", "🏳️‍🌈", "❤️", "🤷‍♀️", "🚀🚀🚀", "👩🏿‍💻", "🙂🙃"]
RTL = [
    "مرحبا",
    "العالم",
    "القاهرة",
    "שלום",
    "עולם",
    "ירושלים",
    "\u200f",
    "\u200e",
    "\u202e",
    "\u202b",
    "\u202c",
    "\u2067",
    "\u2069",
]
MIXED = [
    "Pаris",
    "Bеrlin",
    "Ωmega",
    "Москва",
    "Αθήνα",
    "Tōkyō",
    "Zürich",
    "ﬁnance",
    "İstanbul",
    "straße",
    "ǅemal",
    "Ⅻ",
    "ℌello",
    "𝐁𝐨𝐥𝐝",
    "Ｆｕｌｌ",
]
PUNCT = list(".,;:!?-–—()[]{}\"'«»„“”‘’/\\|@#$%^&*_~`+=<>…·•")
JSON_WORDS = ["id", "name", "type", "value", "items", "meta", "null", "true", "false"]


@dataclass
class Case:
    """One fuzz input: text for nlp.make_doc, or words and spaces for Doc(); optionally
    sentence boundaries ("every" token, after "punct"uation, or "random:<seed>")."""

    kind: str
    text: Optional[str] = None
    words: Optional[List[str]] = None
    spaces: Optional[List[bool]] = None
    sents: Optional[str] = None

    def describe(self, limit: int = 300) -> str:
        """The input as an ASCII string of at most about `limit` characters."""
        if self.words is not None:
            text = "".join(w + (" " if s else "") for w, s in zip(self.words, self.spaces))
            body = f"words={ascii(self.words[:20])[:limit]}" + (
                f" (+{len(self.words) - 20})" if len(self.words) > 20 else ""
            )
            body += f" text={ascii(text[:limit])}"
        else:
            body = f"text={ascii(self.text[:limit])}"
            if len(self.text) > limit:
                body += f" (+{len(self.text) - limit} chars)"
        sents = f" sents={self.sents}" if self.sents else ""
        return f"[{self.kind}{sents}] {body}"


def load_sample_sentences() -> List[List[str]]:
    """The words of every sentence of the shipped CoNLL-2003 sample (train and dev)."""
    sentences, words = [], []
    for split in ("train", "dev"):
        for line in (SAMPLE / f"{split}.iob").read_text(encoding="utf8").splitlines():
            fields = line.split()
            if not fields or fields[0] == "-DOCSTART-":
                if words:
                    sentences.append(words)
                words = []
            else:
                words.append(fields[0])
        if words:
            sentences.append(words)
            words = []
    return sentences


class Generator:
    """Seeded adversarial inputs; every draw comes from one random.Random(seed)."""

    def __init__(self, seed: int, sentences: List[List[str]]) -> None:
        self.rng = random.Random(seed)
        self.sentences = sentences
        self.vocab = sorted({w for s in sentences for w in s})
        self.kinds: List[Tuple[str, float]] = [
            ("empty", 2),
            ("whitespace", 4),
            ("sample", 22),
            ("sample_multi", 8),
            ("newlines_tabs", 5),
            ("long", 1.5),
            ("long_token", 2),
            ("unicode", 8),
            ("control", 5),
            ("digits", 4),
            ("punct", 4),
            ("mixed_script", 4),
            ("repeated", 4),
            ("words_spaces", 14),
        ]

    def cases(self, n: int) -> List[Case]:
        """n cases, in generation order."""
        return [self.case() for _ in range(n)]

    def case(self) -> Case:
        """One case of a kind drawn by weight, with boundaries preset on about 30%."""
        names, weights = zip(*self.kinds)
        kind = self.rng.choices(names, weights)[0]
        case = getattr(self, f"_{kind}")()
        case.kind = kind
        if kind != "empty" and self.rng.random() < 0.3:
            case.sents = self.rng.choice(["every", "punct", f"random:{self.rng.randrange(10**6)}"])
        return case

    # helpers
    def _sentence(self) -> List[str]:
        return list(self.rng.choice(self.sentences))

    def _join(self, pieces: Sequence[str]) -> str:
        return "".join(p + self.rng.choice([" ", " ", " ", "", "\n", "  "]) for p in pieces)

    def _sprinkle(self, words: List[str], pool: Sequence[str], rate: float) -> List[str]:
        """Words with items of pool inserted, glued to a word, or replacing one."""
        out = []
        for word in words:
            roll = self.rng.random()
            if roll < rate / 3:
                out += [word, self.rng.choice(pool)]
            elif roll < 2 * rate / 3:
                out.append(word + self.rng.choice(pool))
            elif roll < rate:
                out.append(self.rng.choice(pool))
            else:
                out.append(word)
        return out

    def _long_string(self) -> str:
        """base64 or minified JSON of 500 to MAX_TOKEN_CHARS characters."""
        n = self.rng.randrange(500, MAX_TOKEN_CHARS)
        if self.rng.random() < 0.5:
            raw = bytes(self.rng.getrandbits(8) for _ in range(n * 3 // 4 + 3))
            return base64.b64encode(raw).decode("ascii")[:n]
        return self._json(n)

    def _json(self, n: int) -> str:
        """Minified JSON of about n characters (at most n)."""
        items = []
        size = 2
        while size < n - 60:
            key = self.rng.choice(JSON_WORDS) + str(self.rng.randrange(1000))
            value = self.rng.choice(
                [
                    self.rng.randrange(-(10**6), 10**6),
                    self.rng.random(),
                    self.rng.choice(self.vocab),
                    None,
                    True,
                    [1, 2, {"x": "y"}],
                ]
            )
            item = json.dumps({key: value}, separators=(",", ":"))[1:-1]
            items.append(item)
            size += len(item) + 1
        return ("{" + ",".join(items) + "}")[:n]

    # the kinds
    def _empty(self) -> Case:
        return Case("", text="")

    def _whitespace(self) -> Case:
        n = self.rng.randrange(1, 40)
        return Case("", text="".join(self.rng.choice(WHITESPACE) for _ in range(n)))

    def _sample(self) -> Case:
        words = self._sentence()
        roll = self.rng.random()
        if roll < 0.15:
            words = [w.lower() for w in words]
        elif roll < 0.25:
            words = [w.upper() for w in words]
        elif roll < 0.4:
            words = self._sprinkle(words, PUNCT + ZERO_WIDTH + EMOJI, 0.2)
        if self.rng.random() < 0.7:
            return Case("", text=" ".join(words))
        return Case("", text=self._join(words))

    def _sample_multi(self) -> Case:
        sents = [" ".join(self._sentence()) for _ in range(self.rng.randrange(2, 12))]
        glue = self.rng.choice(["\n", "\n\n", "\t", " ", "\r\n", "  \n  "])
        return Case("", text=glue.join(sents))

    def _newlines_tabs(self) -> Case:
        words = self._sprinkle(self._sentence(), ["\n", "\t", "\n\n\n", "\t\t", " \n ", "\r"], 0.5)
        return Case("", text=self.rng.choice(["\n", "\t", ""]) + " ".join(words) + "\n")

    def _long(self) -> Case:
        n, words = self.rng.randrange(1000, 6000), []
        while len(words) < n:
            words += self._sentence()
            if self.rng.random() < 0.2:
                words.append(self.rng.choice(WHITESPACE + PUNCT + EMOJI + CJK))
        return Case("", text=" ".join(words[:n]))

    def _long_token(self) -> Case:
        token = self._long_string()
        if self.rng.random() < 0.4:
            return Case("", words=[token], spaces=[False])
        if self.rng.random() < 0.5:
            return Case("", text=token)
        words = self._sentence()
        words.insert(self.rng.randrange(len(words) + 1), token)
        return Case("", text=" ".join(words))

    def _unicode(self) -> Case:
        pool = CJK + EMOJI + RTL + ZERO_WIDTH + [self._combining()]
        if self.rng.random() < 0.3:
            return Case("", text=self._join(self.rng.choices(pool, k=self.rng.randrange(1, 30))))
        return Case("", text=self._join(self._sprinkle(self._sentence(), pool, 0.4)))

    def _combining(self) -> str:
        base = self.rng.choice("aeiouAEIOUnz")
        n = self.rng.randrange(1, 30)
        marks = "".join(chr(self.rng.randrange(0x300, 0x370)) for _ in range(n))
        return base + marks

    def _control(self) -> Case:
        pool = CONTROL + ["\x00" * self.rng.randrange(1, 10)]
        if self.rng.random() < 0.3:
            return Case("", text="".join(self.rng.choices(pool, k=self.rng.randrange(1, 20))))
        return Case("", text=self._join(self._sprinkle(self._sentence(), pool, 0.4)))

    def _digits(self) -> Case:
        pieces = []
        for _ in range(self.rng.randrange(1, 25)):
            pieces.append(
                self.rng.choice(
                    [
                        str(self.rng.randrange(10 ** self.rng.randrange(1, 40))),
                        f"{self.rng.uniform(-1e6, 1e6):.{self.rng.randrange(0, 8)}f}",
                        "/".join(str(self.rng.randrange(1, n)) for n in (32, 13, 10**4)),
                        f"+{self.rng.randrange(10**9, 10**12)}",
                        "1,000,000",
                        "1e-308",
                        "٣٤٥",
                        "１２３",
                        self.rng.choice(self.vocab),
                    ]
                )
            )
        return Case("", text=self._join(pieces))

    def _punct(self) -> Case:
        runs = [
            "".join(self.rng.choices(PUNCT, k=self.rng.randrange(1, 200)))
            for _ in range(self.rng.randrange(1, 8))
        ]
        if self.rng.random() < 0.5:
            runs += self._sentence()
            self.rng.shuffle(runs)
        return Case("", text=self._join(runs))

    def _mixed_script(self) -> Case:
        words = self._sprinkle(self._sentence(), MIXED + CJK + RTL, 0.5)
        return Case("", text=self._join(words))

    def _repeated(self) -> Case:
        roll = self.rng.random()
        if roll < 0.5:
            word = self.rng.choice(self.vocab + MIXED + EMOJI)
            return Case("", text=" ".join([word] * self.rng.randrange(2, 400)))
        if roll < 0.8:
            char = self.rng.choice("a.-!xZ0 \n" + "".join(EMOJI[:2]))
            return Case("", text=char * self.rng.randrange(2, MAX_TOKEN_CHARS))
        phrase = self._sentence()[:4]
        return Case("", text=" ".join(phrase * self.rng.randrange(2, 100)))

    def _words_spaces(self) -> Case:
        """Doc(vocab, words, spaces): no empty word, but whitespace words, words with spaces
        inside, glued words, runs of whitespace words and a last space."""
        pool = (
            WHITESPACE
            + ZERO_WIDTH
            + EMOJI
            + CJK
            + MIXED
            + PUNCT
            + ["New York", " a", "b ", "x\ny", "\t\t", "Inc.", "U.S."]
        )
        words = self._sprinkle(self._sentence(), pool, self.rng.choice([0.1, 0.4, 0.9]))
        if self.rng.random() < 0.2:
            words = [self.rng.choice(WHITESPACE) for _ in range(self.rng.randrange(1, 10))] + words
        spaces = [self.rng.random() < 0.6 for _ in words]
        return Case("", words=words, spaces=spaces)


# -- docs ------------------------------------------------------------------------------------


def make_doc(nlp: Language, case: Case) -> Doc:
    """A fresh Doc of a case (each call a new one), with its preset sentence boundaries."""
    if case.words is not None:
        doc = Doc(nlp.vocab, words=case.words, spaces=case.spaces)
    else:
        doc = nlp.make_doc(case.text)
    if case.sents and len(doc):
        set_sentence_starts(doc, case.sents)
    return doc


def set_sentence_starts(doc: Doc, mode: str) -> None:
    """Preset doc's boundaries: every token a sentence, a sentence after each . ! ? or
    newline token, or random starts ("random:<seed>", about one token in ten)."""
    if mode == "every":
        starts = [True] * len(doc)
    elif mode == "punct":
        starts = [
            i == 0 or doc[i - 1].text in (".", "!", "?") or "\n" in doc[i - 1].text
            for i in range(len(doc))
        ]
    else:
        rng = random.Random(int(mode.split(":")[1]))
        starts = [i == 0 or rng.random() < 0.1 for i in range(len(doc))]
    for token, start in zip(doc, starts):
        token.is_sent_start = start


# -- checks ----------------------------------------------------------------------------------


def labelers(nlp: Language) -> List[Tuple[str, str, str]]:
    """(name, factory, spans_key) of the pipeline's lm_crf_ner / lm_crf_spans components."""
    found = []
    for name in nlp.pipe_names:
        factory = nlp.get_pipe_meta(name).factory
        if factory in FACTORIES:
            found.append((name, factory, nlp.get_pipe(name).cfg["spans_key"]))
    if not any(factory == "lm_crf_ner" for _, factory, _ in found):
        raise ValueError(f"the pipeline {nlp.pipe_names} has no lm_crf_ner component")
    return found


def check_spans(doc: Doc, name: str, key: str) -> List[Tuple[str, str]]:
    """Failures (check, detail) of one component's doc.spans[key]: inside the doc, no
    overlap, one finite score in [0, 1] per span, no whitespace token inside."""
    if key not in doc.spans:
        return [(f"{name}: spans written", f"doc.spans has no {key!r}")]
    group = doc.spans[key]
    failures = []
    bounds = [(s.start, s.end) for s in group]
    bad = [b for b in bounds if not 0 <= b[0] < b[1] <= len(doc)]
    if bad:
        failures.append((f"{name}: spans inside doc", f"{bad[:3]} in a doc of {len(doc)}"))
    ordered = sorted(bounds)
    overlaps = [(a, b) for a, b in zip(ordered, ordered[1:]) if b[0] < a[1]]
    if overlaps:
        failures.append((f"{name}: no overlap", str(overlaps[:3])))
    scores = group.attrs.get("scores")
    if scores is None or len(scores) != len(group):
        n = "none" if scores is None else len(scores)
        failures.append((f"{name}: one score per span", f"{n} scores, {len(group)} spans"))
    elif len(scores):
        values = numpy.asarray(scores, dtype="float64")
        if not (numpy.isfinite(values).all() and (values >= 0).all() and (values <= 1).all()):
            failures.append((f"{name}: scores finite in [0, 1]", str(values[:5].tolist())))
    spaced = [(s.start, s.end, t.i) for s in group for t in s if t.is_space]
    if spaced:
        failures.append((f"{name}: no whitespace in span", f"(start, end, token) {spaced[:3]}"))
    return failures


def check_ner(doc: Doc, name: str, key: str) -> List[Tuple[str, str]]:
    """The NER's own checks: doc.spans[key] is doc.ents, every token has an IOB tag."""
    failures = []
    ents = [(e.start, e.end, e.label_) for e in doc.ents]
    spans = [(s.start, s.end, s.label_) for s in doc.spans.get(key, [])]
    if key in doc.spans and ents != spans:
        failures.append((f"{name}: spans == ents", f"ents {ents[:3]} spans {spans[:3]}"))
    missing = [t.i for t in doc if t.ent_iob_ not in ("B", "I", "O")]
    if missing:
        failures.append((f"{name}: every token annotated", f"tokens {missing[:5]} have no IOB"))
    return failures


def check_doc(doc: Doc, components: List[Tuple[str, str, str]]) -> List[Tuple[str, str]]:
    """Every failure of a processed doc, as (check, detail)."""
    failures = []
    for name, factory, key in components:
        failures += check_spans(doc, name, key)
        if factory == "lm_crf_ner":
            failures += check_ner(doc, name, key)
    return failures


def check_names(components: List[Tuple[str, str, str]]) -> List[str]:
    """The names of every check, in the table's order."""
    names = []
    for name, factory, _ in components:
        names += [
            f"{name}: {c}"
            for c in (
                "spans written",
                "spans inside doc",
                "no overlap",
                "one score per span",
                "scores finite in [0, 1]",
                "no whitespace in span",
            )
        ]
        if factory == "lm_crf_ner":
            names += [f"{name}: spans == ents", f"{name}: every token annotated"]
    return names + ["batch == alone: spans", "batch == alone: scores"]


def annotations(doc: Doc, components: List[Tuple[str, str, str]]) -> Dict[str, Any]:
    """What the components wrote on doc: IOB tags, entities, each key's spans and scores."""
    out: Dict[str, Any] = {
        "iob": [t.ent_iob_ for t in doc],
        "ents": [(e.start, e.end, e.label_) for e in doc.ents],
    }
    for _, _, key in components:
        group = doc.spans.get(key, [])
        out[key] = [(s.start, s.end, s.label_) for s in group]
        scores = getattr(group, "attrs", {}).get("scores")
        out[f"{key} scores"] = numpy.asarray([] if scores is None else scores, dtype="float64")
    return out


def compare(batch: Dict[str, Any], alone: Dict[str, Any]) -> Tuple[List[str], float]:
    """The keys whose spans differ between the two runs, and the largest score difference
    (of spans found in both)."""
    differ = [k for k in batch if not k.endswith(" scores") and batch[k] != alone[k]]
    diff = 0.0
    for key in (k for k in batch if k.endswith(" scores")):
        a, b = batch[key], alone[key]
        if a.shape == b.shape and a.size:
            diff = max(diff, float(numpy.abs(a - b).max()))
    return differ, diff


# -- the run ---------------------------------------------------------------------------------


@dataclass
class Report:
    """Counts of a fuzz run; examples are kept, a few per check and exception type."""

    checks: Dict[str, int]
    docs: int = 0
    tokens: int = 0
    spans: Counter = field(default_factory=Counter)
    seconds: float = 0.0
    exceptions: Counter = field(default_factory=Counter)
    examples: Dict[str, List[str]] = field(default_factory=dict)
    kinds: Counter = field(default_factory=Counter)
    batch_docs: int = 0
    max_score_diff: float = 0.0
    slowest: Tuple[float, int, int] = (0.0, 0, 0)  # seconds, docs, tokens of a batch

    def time_batch(self, seconds: float, docs: List[Tuple[int, Doc]]) -> None:
        self.seconds += seconds
        if seconds > self.slowest[0]:
            self.slowest = (seconds, len(docs), sum(len(doc) for _, doc in docs))

    def fail(self, check: str, case: Case, detail: str) -> None:
        self.checks[check] = self.checks.get(check, 0) + 1
        self.example(check, f"{case.describe()}: {detail}")

    def error(self, stage: str, what: str, err: Tuple[str, str]) -> None:
        """Count an exception (type name, message) raised by `what` (an input's or a
        batch's description)."""
        kind = f"{stage}: {err[0]}"
        self.exceptions[kind] += 1
        self.example(kind, f"{what}: {err[1][:300]}")

    def example(self, key: str, text: str) -> None:
        examples = self.examples.setdefault(key, [])
        if len(examples) < N_EXAMPLES:
            examples.append(text)

    @property
    def failed(self) -> bool:
        return any(self.checks.values()) or bool(self.exceptions)


def run_batches(
    nlp: Language,
    cases: List[Case],
    order: List[int],
    batch_size: int,
    components,
    report: Report,
    keep: set,
) -> Dict[int, Dict[str, Any]]:
    """Process the cases in `order` with nlp.pipe, batch by batch; check every doc, and
    return the annotations of the cases in `keep`."""
    kept = {}
    for first in range(0, len(order), batch_size):
        done = run_batch(nlp, cases, order[first : first + batch_size], report)
        if (first + batch_size) // 1000 > first // 1000:
            print(f"{first + len(done)} docs, {report.seconds:.0f} s", file=sys.stderr)
        for i, doc in done:
            if doc is None:
                continue
            record(doc, cases[i], components, report)
            if i in keep:
                kept[i] = annotations(doc, components)
    return kept


def run_batch(
    nlp: Language, cases: List[Case], indices: List[int], report: Report
) -> List[Tuple[int, Optional[Doc]]]:
    """The processed docs of one batch (None where one raised). A batch that raises is
    retried doc by doc: each exception is counted once per doc, and once as "batch only"
    when every doc passes alone. Seconds count every pipeline call, failed ones too."""
    docs = []
    for i in indices:
        try:
            docs.append((i, make_doc(nlp, cases[i])))
        except Exception as err:  # noqa: BLE001 - a fuzz run counts every exception
            report.error("make_doc", cases[i].describe(), failure(err))
    start = time.perf_counter()
    try:
        done = list(nlp.pipe([doc for _, doc in docs], batch_size=len(indices)))
        report.time_batch(time.perf_counter() - start, docs)
        return [(i, doc) for (i, _), doc in zip(docs, done)]
    except Exception as err:  # noqa: BLE001
        report.time_batch(time.perf_counter() - start, docs)
        batch_error, described = failure(err), describe_batch(cases, docs)
    gc.collect()
    retried = [(i, process_alone(nlp, cases[i], report)) for i, _ in docs]
    if all(doc is not None for _, doc in retried):
        report.error("batch only", described, batch_error)
    return retried


def failure(err: BaseException) -> Tuple[str, str]:
    """An exception's type name and message. Only these are kept: the exception's
    traceback holds the frames, and so the tensors, of the call that raised."""
    return type(err).__name__, str(err)


def process_alone(nlp: Language, case: Case, report: Report) -> Optional[Doc]:
    """A fresh doc of case through the pipeline on its own (None if it raises)."""
    start = time.perf_counter()
    try:
        return nlp(make_doc(nlp, case))
    except Exception as err:  # noqa: BLE001
        report.error("pipeline", case.describe(), failure(err))
        return None
    finally:
        report.seconds += time.perf_counter() - start


def n_sequences(doc: Doc, max_length: int = 128) -> int:
    """How many sentences or windows of max_length tokens the labelers cut doc into."""
    if doc.has_annotation("SENT_START"):
        return sum(math.ceil(len(sent) / max_length) for sent in doc.sents)
    return math.ceil(len(doc) / max_length)


def describe_batch(cases: List[Case], docs: List[Tuple[int, Doc]]) -> str:
    """A batch's size, and its doc with the most sequences."""
    if not docs:
        return "an empty batch"
    sizes = [(n_sequences(doc), len(doc), i) for i, doc in docs]
    most = max(sizes)
    summary = (
        f"{len(docs)} docs, {sum(s[1] for s in sizes)} tokens, "
        f"{sum(s[0] for s in sizes)} sequences, the longest "
        f"{max(len(doc) for _, doc in docs)} tokens; the doc with the most "
        f"sequences ({most[0]}, {most[1]} tokens): "
    )
    return f"a batch of {summary}{cases[most[2]].describe(120)}"


def record(doc: Doc, case: Case, components, report: Report) -> None:
    """Count a processed doc and its failures."""
    report.docs += 1
    report.tokens += len(doc)
    report.kinds[case.kind] += 1
    for name, factory, key in components:
        what = "entities" if factory == "lm_crf_ner" else "spans"
        report.spans[f"{what} ({name})"] += len(doc.spans.get(key, []))
    for check, detail in check_doc(doc, components):
        report.fail(check, case, detail)


def check_batch_independence(
    nlp: Language, cases: List[Case], batched: Dict[int, Dict[str, Any]], components, report: Report
) -> None:
    """Process each kept case alone and compare with its annotations from the batches."""
    for i in sorted(batched):
        try:
            alone = annotations(nlp(make_doc(nlp, cases[i])), components)
        except Exception as err:  # noqa: BLE001
            report.error("alone", cases[i].describe(), failure(err))
            continue
        report.batch_docs += 1
        differ, diff = compare(batched[i], alone)
        report.max_score_diff = max(report.max_score_diff, diff)
        if differ:
            detail = "; ".join(
                f"{k}: batch {str(batched[i][k])[:120]} alone {str(alone[k])[:120]}" for k in differ
            )
            report.fail("batch == alone: spans", cases[i], detail)
        elif diff > SCORE_TOLERANCE:
            report.fail("batch == alone: scores", cases[i], f"max difference {diff:.2e}")


def fuzz(nlp: Language, n_docs: int, seed: int, batch_size: int, batch_sample: int) -> Report:
    """Generate, process and check n_docs cases; batch independence on batch_sample."""
    components = labelers(nlp)
    cases = Generator(seed, load_sample_sentences()).cases(n_docs)
    rng = random.Random(seed + 1)
    order = list(range(n_docs))
    rng.shuffle(order)
    keep = set(rng.sample(range(n_docs), min(batch_sample, n_docs)))
    report = Report(checks={name: 0 for name in check_names(components)})
    batched = run_batches(nlp, cases, order, batch_size, components, report, keep)
    check_batch_independence(nlp, cases, batched, components, report)
    return report


# -- the default pipeline --------------------------------------------------------------------


def sample_examples(nlp: Language) -> List[Example]:
    """The sample's training sentences, with gold entities and chunks ("chunks")."""
    from spacy_lmcrf.conll import conll_to_docs

    path = SAMPLE / "train.iob"
    ner = conll_to_docs(nlp.vocab, path, task="ner", scheme="IOB1")
    chunks = conll_to_docs(nlp.vocab, path, task="chunk", column=-2, scheme="IOB1")
    examples = []
    for ref, chunked in zip(ner, chunks):
        ref.spans["chunks"] = [Span(ref, s.start, s.end, s.label_) for s in chunked.spans["chunks"]]
        words = [t.text for t in ref]
        examples.append(Example(Doc(nlp.vocab, words=words), ref))
    return examples


def train_pipeline(path: Path, steps: int, seed: int = 0) -> None:
    """Train the small LM-LSTM-CRF pipeline (NER and chunks) on the sample; save at path."""
    from spacy.training.initialize import convert_vectors
    from thinc.api import Adam

    spacy.util.fix_random_seed(seed)
    nlp = spacy.blank("en")
    convert_vectors(nlp, GLOVE, truncate=0, prune=-1)
    nlp.add_pipe("lm_crf_ner", config={"model": {"tok2vec": TINY_TOK2VEC}})
    nlp.add_pipe("lm_crf_spans", config={"spans_key": "chunks", "model": {"tok2vec": TINY_TOK2VEC}})
    examples = sample_examples(nlp)
    nlp.initialize(lambda: examples)
    optimizer, rng = Adam(0.01), random.Random(seed)
    for step in range(steps):
        if step % (len(examples) // 10) == 0:
            rng.shuffle(examples)
        first = step % (len(examples) // 10) * 10
        nlp.update(examples[first : first + 10], sgd=optimizer)
    path.parent.mkdir(parents=True, exist_ok=True)
    nlp.to_disk(path)


def get_pipeline(model: Optional[str], work_dir: Path, steps: int) -> Tuple[Language, str]:
    """The pipeline to fuzz and where it is: --model, or the cached (trained if absent)
    default pipeline under work_dir."""
    if model:
        return spacy.load(model), str(model)
    path = Path(work_dir) / f"lmcrf_ner_chunks_steps{steps}"
    if not (path / "config.cfg").exists():
        print(f"training the default pipeline ({steps} steps) -> {path}", file=sys.stderr)
        train_pipeline(path, steps)
    return spacy.load(path), str(path)


# -- output ----------------------------------------------------------------------------------


def figures(report: Report, settings: Dict[str, Any]) -> Dict[str, Any]:
    """The JSON of a run."""
    return {
        **provenance(),
        **settings,
        "docs": report.docs,
        "tokens": report.tokens,
        "spans": dict(report.spans),
        "seconds": round(report.seconds, 2),
        "docs_per_s": round(report.docs / report.seconds, 1) if report.seconds else None,
        "tokens_per_s": round(report.tokens / report.seconds) if report.seconds else None,
        "checks": report.checks,
        "exceptions": dict(report.exceptions),
        "batch_docs": report.batch_docs,
        "batch_max_score_diff": report.max_score_diff,
        "slowest_batch": {
            "seconds": round(report.slowest[0], 2),
            "docs": report.slowest[1],
            "tokens": report.slowest[2],
        },
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "kinds": dict(sorted(report.kinds.items())),
        "examples": report.examples,
        "passed": not report.failed,
    }


def markdown(result: Dict[str, Any]) -> str:
    """The figures as a markdown table, then a few example inputs of each failure."""
    rows = [("docs", result["docs"]), ("tokens", result["tokens"])]
    rows += list(result["spans"].items())
    rows += [
        ("seconds (pipeline only)", result["seconds"]),
        ("docs/s", result["docs_per_s"]),
        ("tokens/s", result["tokens_per_s"]),
        (
            "slowest batch: seconds (docs, tokens)",
            "{seconds} ({docs}, {tokens})".format(**result["slowest_batch"]),
        ),
        ("peak RSS (MiB)", result["peak_rss_mib"]),
        ("batch-independence docs", result["batch_docs"]),
        ("batch vs alone: max score difference", f"{result['batch_max_score_diff']:.1e}"),
    ]
    rows += [(f"failures: {name}", n) for name, n in result["checks"].items()]
    rows += [(f"exceptions: {name}", n) for name, n in result["exceptions"].items()]
    if not result["exceptions"]:
        rows.append(("exceptions", 0))
    lines = ["| figure | value |", "|---|---|"] + [f"| {k} | {v} |" for k, v in rows]
    for key, examples in result["examples"].items():
        lines += ["", f"{key}:"] + [f"- {text}" for text in examples]
    return "\n".join(lines)


def address_space() -> int:
    """The process's virtual memory size in bytes (VmSize), 0 where /proc has none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@contextmanager
def memory_cap(gib: float) -> Iterator[None]:
    """Inside the block, cap the address space at gib GiB more than the process holds at
    its start (0: no cap); the old limit after it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if gib > 0:
        limit = address_space() + int(gib * 2**30)
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default=None, help="a saved pipeline (default: train one)")
    parser.add_argument(
        "--work-dir",
        default=str(ROOT / "training" / "fuzz"),
        help="where the default pipeline is cached",
    )
    parser.add_argument(
        "--train-steps",
        type=int,
        default=300,
        help="update steps (batches of 10 sentences) of the default pipeline",
    )
    parser.add_argument("--n-docs", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--batch-sample",
        type=int,
        default=500,
        help="docs also processed alone, for batch independence",
    )
    parser.add_argument(
        "--max-memory-gib",
        type=float,
        default=8.0,
        help="cap the address space (RLIMIT_AS) at this many GiB more than "
        "the process holds when fuzzing starts, so that a "
        "runaway allocation is counted as an exception instead of inviting "
        "the OOM killer; 0: no cap",
    )
    parser.add_argument("--out", default=None, help="a JSON of the figures")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the fuzz; print the table; 0 when every check passes and nothing raised."""
    args = parse_args(argv)
    nlp, model = get_pipeline(args.model, Path(args.work_dir), args.train_steps)
    with memory_cap(args.max_memory_gib):
        report = fuzz(nlp, args.n_docs, args.seed, args.batch_size, args.batch_sample)
    settings = {
        "model": model,
        "pipeline": nlp.pipe_names,
        "n_docs": args.n_docs,
        "seed": args.seed,
        "batch_size": args.batch_size,
        "batch_sample": args.batch_sample,
        "max_memory_gib": args.max_memory_gib,
    }
    result = figures(report, settings)
    print(markdown(result))
    if args.out:
        write_json(Path(args.out), result)
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
