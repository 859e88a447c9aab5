"""Lossless reading of CoNLL-style column files into spaCy Docs.

Input: one token per line, columns separated by spaces or tabs (2 or more, the
same number on every line), a blank line between sentences, plain text or
gzip, UTF-8 (latin-1 with a warning when the file isn't valid UTF-8).
``-DOCSTART-`` lines in any form (``-DOCSTART- -X- O O``,
``-DOCSTART- -X- -X- O``, Dutch-style ``-DOCSTART- -DOCSTART- O`` directly
before or inside a sentence) are document delimiters: they never become
tokens or split a sentence, they set ``doc_start`` on the sentence holding the
first token after them.

Every sentence becomes one Doc (``doc.user_data["conll_doc_start"]`` and
``["conll_line"]`` keep the delimiter flag and the line of the first token;
``convert`` only writes them to the DocBin with ``store_user_data=True``,
because spaCy serialises user data per Doc, which makes reading and writing
the DocBin about 8 times slower):

* ``task="ner"``: ``doc.ents`` from the tag column, decoded in ``scheme``
  ("IOB1" for CoNLL-2003, "IOB2" for CoNLL-2002); all other tokens are "O".
* ``task="chunk"``: ``doc.spans[spans_key]`` from the tag column
  (CoNLL-2000: "IOB2"; the chunk column of CoNLL-2003: "IOB1").
* ``task="pos"``: ``token.tag_`` from the tag column.

Command line (``spacy lmcrf convert``, ``split-dev``, ``slice``, ``sample``,
``count``; ``python -m spacy_lmcrf.conll`` runs the same commands, convert when
its first argument names none of the others)::

    spacy lmcrf convert INPUT OUTPUT --task ner [--column -1]
        [--scheme IOB1] [--spans-key chunks] [--expect-sentences N]
        [--expect-tokens N] [--store-user-data]
    spacy lmcrf split-dev DOCS TRAIN_OUT DEV_OUT --n-dev 1000 [--seed 0]
    spacy lmcrf slice DOCS OUTPUT --start 0 --end 3132
    spacy lmcrf sample DOCS OUTPUT --fraction 0.1 [--seed 0]
    spacy lmcrf count INPUT [--expect-sentences N] [--expect-tokens N]

The first writes a ``.spacy`` DocBin and checks it against an independent
count of the input and a re-encoding of every entity/chunk. ``split-dev``
holds out ``n_dev`` random Docs of a DocBin as a dev set (the CoNLL-2000
papers hold out 1,000 training sentences), deterministically for a seed.
``slice`` writes the Docs ``start:end`` of a DocBin, in order (a contiguous
split). ``sample`` writes a random fraction of the Docs (round(fraction * n),
at least one), in their order, deterministically for a seed: the labeling
rate r of Yang et al. 2016's Table 8. ``count`` counts the sentences and
tokens of a CoNLL file and fails unless they are the expected numbers.
"""

import gzip
import random
import re
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, List, Optional, Sequence, Tuple, Union

from spacy.tokens import Doc, DocBin, Span
from spacy.vocab import Vocab

from .tags import SCHEMES, spans_to_tags, tags_to_spans

PathLike = Union[str, Path]

TASKS: Tuple[str, ...] = ("ner", "chunk", "pos")
# the commands of `spacy lmcrf` that work on CoNLL files and DocBins
COMMANDS: Tuple[str, ...] = ("convert", "split-dev", "slice", "sample", "count")
DOCSTART = "-DOCSTART-"
DOC_START_KEY = "conll_doc_start"
LINE_KEY = "conll_line"
# Only ASCII whitespace separates columns: tokens may hold e.g. U+00A0.
_BLANK = " \t\r\f\v"
_SEPARATOR = re.compile(r"[ \t\r\f\v]+")


@dataclass
class ConllSentence:
    """One sentence of a CoNLL file."""

    words: List[str]
    columns: List[List[str]]
    line: int
    doc_start: bool = False


def read_lines(path: PathLike) -> List[str]:
    """Read a plain or gzipped text file as UTF-8, else latin-1 with a warning."""
    with open(path, "rb") as file_:
        data = file_.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        warnings.warn(
            f"{path} is not valid UTF-8 ({err.reason} at byte {err.start}); reading it as latin-1",
            stacklevel=2,
        )
        text = data.decode("latin-1")
    return text.split("\n")


def _is_docstart(fields: Sequence[str]) -> bool:
    return bool(fields) and fields[0] == DOCSTART


def read_conll_sentences(path: PathLike) -> Iterator[ConllSentence]:
    """Yield the sentences of a CoNLL file; see the module docstring for the format."""
    n_columns: Optional[int] = None
    first_line = 0
    pending_doc_start = False
    sentence: Optional[ConllSentence] = None
    for line_no, line in enumerate(read_lines(path), start=1):
        stripped = line.strip(_BLANK)
        if not stripped:
            if sentence is not None:
                yield sentence
                sentence = None
            continue
        fields = _SEPARATOR.split(stripped)
        if _is_docstart(fields):
            pending_doc_start = True
            continue
        if n_columns is None:
            if len(fields) < 2:
                raise ValueError(
                    f"{path}:{line_no}: expected at least 2 columns, found {len(fields)}: {line!r}"
                )
            n_columns, first_line = len(fields), line_no
        elif len(fields) != n_columns:
            raise ValueError(
                f"{path}:{line_no}: expected {n_columns} columns (as on line "
                f"{first_line}), found {len(fields)}: {line!r}"
            )
        if sentence is None:
            sentence = ConllSentence(words=[], columns=[], line=line_no)
        if pending_doc_start:
            sentence.doc_start, pending_doc_start = True, False
        sentence.words.append(fields[0])
        sentence.columns.append(fields)
    if sentence is not None:
        yield sentence


def count_conll(path: PathLike) -> Tuple[int, int]:
    """Count sentences and tokens with a plain pass over the raw lines.

    Kept separate from read_conll_sentences so convert can cross-check it.
    """
    n_sentences = n_tokens = 0
    in_sentence = False
    for line in read_lines(path):
        if not line.strip(_BLANK):
            in_sentence = False
        elif line.split()[:1] != [DOCSTART]:
            n_tokens += 1
            n_sentences += not in_sentence
            in_sentence = True
    return n_sentences, n_tokens


def _check_options(task: str, scheme: str) -> None:
    if task not in TASKS:
        raise ValueError(f"Unknown task {task!r}: expected one of {', '.join(TASKS)}")
    if task != "pos" and scheme not in SCHEMES:
        raise ValueError(f"Unknown tag scheme {scheme!r}: expected one of {', '.join(SCHEMES)}")


def _tag_column(path: PathLike, sentence: ConllSentence, column: int) -> List[str]:
    """The tag column of a sentence; the word column (0) is refused."""
    n_columns = len(sentence.columns[0])
    if not -n_columns <= column < n_columns or column % n_columns == 0:
        raise ValueError(
            f"{path}: column {column} is not a tag column of a file with "
            f"{n_columns} columns (0 is the word column)"
        )
    return [fields[column] for fields in sentence.columns]


def _decode(
    path: PathLike, sentence: ConllSentence, tags: List[str], scheme: str
) -> List[Tuple[int, int, str]]:
    try:
        return tags_to_spans(tags, scheme)
    except ValueError as err:
        raise ValueError(f"{path}:{sentence.line}: in the sentence starting here: {err}") from None


def sentence_to_doc(
    vocab: Vocab,
    path: PathLike,
    sentence: ConllSentence,
    *,
    task: str,
    column: int = -1,
    scheme: str = "IOB1",
    spans_key: str = "chunks",
) -> Doc:
    """Build the Doc of one sentence (path is only used in error messages)."""
    n_words = len(sentence.words)
    tags = _tag_column(path, sentence, column)
    sent_starts: List[Union[bool, int, None]] = [True, *[False] * (n_words - 1)]
    doc = Doc(
        vocab,
        words=sentence.words,
        spaces=[True] * (n_words - 1) + [False],
        sent_starts=sent_starts,
        tags=tags if task == "pos" else None,
    )
    if task != "pos":
        spans = [
            Span(doc, start, end, label=label)
            for start, end, label in _decode(path, sentence, tags, scheme)
        ]
        if task == "ner":
            doc.set_ents(spans, default="outside")
        else:
            doc.spans[spans_key] = spans
    doc.user_data[DOC_START_KEY] = sentence.doc_start
    doc.user_data[LINE_KEY] = sentence.line
    return doc


def conll_to_docs(
    vocab: Vocab,
    path: PathLike,
    *,
    task: str,
    column: int = -1,
    scheme: str = "IOB1",
    spans_key: str = "chunks",
) -> Iterator[Doc]:
    """Yield one Doc per sentence of a CoNLL file, annotated for `task`."""
    _check_options(task, scheme)
    for sentence in read_conll_sentences(path):
        yield sentence_to_doc(
            vocab,
            path,
            sentence,
            task=task,
            column=column,
            scheme=scheme,
            spans_key=spans_key,
        )


def _doc_spans(doc: Doc, task: str, spans_key: str) -> List[Tuple[int, int, str]]:
    group = doc.ents if task == "ner" else doc.spans.get(spans_key, [])
    return [(span.start, span.end, span.label_) for span in group]


def _verify_doc(
    path: PathLike,
    sentence: ConllSentence,
    doc: Doc,
    *,
    task: str,
    column: int,
    scheme: str,
    spans_key: str,
    check_user_data: bool,
) -> bool:
    """Check a stored Doc against its input sentence.

    Returns whether the input tags were already in canonical form; raises
    ValueError when anything differs after normalisation.
    """
    where = f"{path}:{sentence.line}"
    if [token.text for token in doc] != sentence.words:
        raise ValueError(f"{where}: the stored words differ from the input")
    if not doc[0].is_sent_start or any(token.is_sent_start for token in doc[1:]):
        raise ValueError(f"{where}: the stored sentence boundaries are wrong")
    if check_user_data and (
        doc.user_data.get(DOC_START_KEY) != sentence.doc_start
        or doc.user_data.get(LINE_KEY) != sentence.line
    ):
        raise ValueError(f"{where}: the stored user_data is wrong")
    tags = _tag_column(path, sentence, column)
    if task == "pos":
        if [token.tag_ for token in doc] != tags:
            raise ValueError(f"{where}: the stored POS tags differ from the input")
        return True
    if task == "ner" and any(token.ent_iob_ == "" for token in doc):
        raise ValueError(f"{where}: some tokens have no entity annotation")
    normalised = spans_to_tags(len(tags), _decode(path, sentence, tags, scheme), scheme)
    stored = spans_to_tags(len(doc), _doc_spans(doc, task, spans_key), scheme)
    if stored != normalised:
        raise ValueError(
            f"{where}: the stored {task} spans re-encode to {stored}, "
            f"the input tags normalise to {normalised}"
        )
    return normalised == tags


def convert(
    input_path: PathLike,
    output_path: PathLike,
    *,
    task: str,
    column: int = -1,
    scheme: str = "IOB1",
    spans_key: str = "chunks",
    expect_sentences: Optional[int] = None,
    expect_tokens: Optional[int] = None,
    store_user_data: bool = False,
) -> Tuple[int, int]:
    """Convert a CoNLL file to a DocBin and verify it; return (sentences, tokens).

    The written DocBin is read back and compared with an independent count of
    the input, with `expect_*` when given, and token by token with the input
    (words, sentence starts, and the tags re-encoded from the stored spans).
    Input tags that aren't in the scheme's canonical form (e.g. IOB2 "I-X"
    after "O") are decoded like conlleval does and reported in a warning.
    store_user_data also writes each Doc's user_data (doc-start flag, line).
    """
    _check_options(task, scheme)
    vocab = Vocab()
    sentences = list(read_conll_sentences(input_path))
    doc_bin = DocBin(store_user_data=store_user_data)
    for sentence in sentences:
        doc_bin.add(
            sentence_to_doc(
                vocab,
                input_path,
                sentence,
                task=task,
                column=column,
                scheme=scheme,
                spans_key=spans_key,
            )
        )
    output_path = Path(output_path)
    if output_path.parent:
        output_path.parent.mkdir(parents=True, exist_ok=True)
    doc_bin.to_disk(output_path)
    stored = list(DocBin().from_disk(output_path).get_docs(Vocab()))
    n_docs, n_tokens = len(stored), sum(len(doc) for doc in stored)
    expected = count_conll(input_path)
    if (n_docs, n_tokens) != expected:
        raise ValueError(
            f"{output_path}: holds {n_docs} docs / {n_tokens} tokens but "
            f"{input_path} has {expected[0]} sentences / {expected[1]} tokens"
        )
    for name, want, got in (
        ("sentences", expect_sentences, n_docs),
        ("tokens", expect_tokens, n_tokens),
    ):
        if want is not None and want != got:
            raise ValueError(f"{input_path}: expected {want} {name}, found {got}")
    non_canonical = [
        sentence.line
        for sentence, doc in zip(sentences, stored)
        if not _verify_doc(
            input_path,
            sentence,
            doc,
            task=task,
            column=column,
            scheme=scheme,
            spans_key=spans_key,
            check_user_data=store_user_data,
        )
    ]
    if non_canonical:
        warnings.warn(
            f"{input_path}: {len(non_canonical)} of {n_docs} sentences have tags "
            f"that are not canonical {scheme} (first at line {non_canonical[0]}); "
            "they were decoded like conlleval does",
            stacklevel=2,
        )
    return n_docs, n_tokens


def split_dev(
    docs_path: PathLike,
    train_out: PathLike,
    dev_out: PathLike,
    n_dev: int,
    seed: int,
) -> Tuple[int, int]:
    """Hold out n_dev random Docs of a DocBin; return (n_train, n_dev).

    The choice depends only on the number of Docs and the seed; both outputs
    keep the input order (and user_data, if the input has any).
    """
    docs = list(DocBin().from_disk(docs_path).get_docs(Vocab()))
    if not 0 < n_dev < len(docs):
        raise ValueError(
            f"{docs_path}: can't hold out {n_dev} of {len(docs)} docs "
            f"(need 0 < n_dev < {len(docs)})"
        )
    dev_ids = set(random.Random(seed).sample(range(len(docs)), n_dev))
    store_user_data = any(doc.user_data for doc in docs)
    train_bin = DocBin(store_user_data=store_user_data)
    dev_bin = DocBin(store_user_data=store_user_data)
    for i, doc in enumerate(docs):
        (dev_bin if i in dev_ids else train_bin).add(doc)
    for path, doc_bin in ((train_out, train_bin), (dev_out, dev_bin)):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        doc_bin.to_disk(path)
    return len(docs) - n_dev, n_dev


def slice_docs(docs_path: PathLike, output: PathLike, start: int, end: int) -> int:
    """Write Docs start..end (end exclusive) of a DocBin, in order; return how many.

    The range must lie inside the DocBin: a split never silently comes out short.
    """
    docs = list(DocBin().from_disk(docs_path).get_docs(Vocab()))
    if not 0 <= start < end <= len(docs):
        raise ValueError(
            f"{docs_path}: can't take docs {start}:{end} of {len(docs)} "
            f"(need 0 <= start < end <= {len(docs)})"
        )
    selected = docs[start:end]
    doc_bin = DocBin(docs=selected, store_user_data=any(doc.user_data for doc in selected))
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    doc_bin.to_disk(output)
    return len(selected)


def sample_docs(docs_path: PathLike, output: PathLike, fraction: float, seed: int) -> int:
    """Write a random fraction of the Docs of a DocBin, in their order; return how many.

    The choice depends only on the number of Docs, the fraction and the seed."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    docs = list(DocBin().from_disk(docs_path).get_docs(Vocab()))
    n_keep = max(1, round(fraction * len(docs)))
    keep = sorted(random.Random(seed).sample(range(len(docs)), n_keep))
    selected = [docs[i] for i in keep]
    doc_bin = DocBin(docs=selected, store_user_data=any(doc.user_data for doc in selected))
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    doc_bin.to_disk(output)
    return len(selected)


def check_counts(
    path: PathLike,
    expect_sentences: Optional[int] = None,
    expect_tokens: Optional[int] = None,
) -> Tuple[int, int]:
    """Count a CoNLL file's sentences and tokens; raise unless they are as expected."""
    n_sentences, n_tokens = count_conll(path)
    for name, want, got in (
        ("sentences", expect_sentences, n_sentences),
        ("tokens", expect_tokens, n_tokens),
    ):
        if want is not None and want != got:
            raise ValueError(f"{path}: expected {want} {name}, found {got}")
    return n_sentences, n_tokens


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m spacy_lmcrf.conll [COMMAND] ...`: `spacy lmcrf COMMAND` for COMMAND
    convert, split-dev, slice, sample or count, and convert when the first argument
    names none of them; returns the exit status."""
    from .cli import run_as_program

    args = list(sys.argv[1:] if argv is None else argv)
    prog = "python -m spacy_lmcrf.conll"
    if args and args[0] in COMMANDS:
        return run_as_program(args[0], args[1:], f"{prog} {args[0]}")
    return run_as_program("convert", args, prog)


if __name__ == "__main__":
    sys.exit(main())
