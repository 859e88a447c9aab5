import gzip
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
from spacy.tokens import Doc, DocBin
from spacy.vocab import Vocab

from spacy_lmcrf.conll import (
    ConllSentence,
    conll_to_docs,
    convert,
    count_conll,
    main,
    read_conll_sentences,
    split_dev,
)
from spacy_lmcrf.tags import spans_to_tags, tags_to_spans

from ..util import ROOT as REPO

ASSETS = REPO / "assets"
DATA = Path(os.environ.get("SPACY_LMCRF_DATA", REPO.parent / "shared" / "data"))

NER_4 = """\
-DOCSTART- -X- O O

EU NNP I-NP I-ORG
rejects VBZ I-VP O
German JJ I-NP I-MISC
call NN I-NP O
. . O O

Peter NNP I-NP I-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O

Israel NNP I-NP I-LOC
Syria NNP I-NP B-LOC
Lebanon NNP I-NP B-LOC
New NNP I-NP I-LOC
York NNP I-NP I-LOC
"""


def write(tmp_path: Path, text: str, name: str = "data.txt") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def load(path: Path):
    return list(DocBin().from_disk(path).get_docs(Vocab()))


def ents(doc):
    return [(e.start, e.end, e.label_) for e in doc.ents]


def test_read_sentences(tmp_path):
    sentences = list(read_conll_sentences(write(tmp_path, NER_4)))
    assert [s.words for s in sentences] == [
        ["EU", "rejects", "German", "call", "."],
        ["Peter", "Blackburn"],
        ["Israel", "Syria", "Lebanon", "New", "York"],
    ]
    assert [s.line for s in sentences] == [3, 9, 14]
    assert [s.doc_start for s in sentences] == [True, False, True]
    assert sentences[0].columns[1] == ["rejects", "VBZ", "I-VP", "O"]
    assert isinstance(sentences[0], ConllSentence)


@pytest.mark.parametrize(
    "docstart",
    [
        "-DOCSTART- -X- O O",
        "-DOCSTART- -X- -X- O",
        "-DOCSTART-",
        "-DOCSTART- -DOCSTART- O",
        "-DOCSTART-\t-X-\tO\tO\tEXTRA",
        "  -DOCSTART- O  ",
    ],
)
def test_docstart_forms(tmp_path, docstart):
    text = f"{docstart}\n\na O\nb B-X\n\n{docstart}\n\nc O\n\nd O\n"
    sentences = list(read_conll_sentences(write(tmp_path, text)))
    assert [s.words for s in sentences] == [["a", "b"], ["c"], ["d"]]
    assert [s.doc_start for s in sentences] == [True, True, False]
    assert count_conll(tmp_path / "data.txt") == (3, 4)


def test_docstart_inside_sentence(tmp_path):
    """Dutch CoNLL-2002 style: the delimiter sits in the sentence without blank lines."""
    text = (
        "-DOCSTART- -DOCSTART- O\nDe Art O\ntekst N O\n\n"
        "Een Art O\n-DOCSTART- -DOCSTART- O\nzin N B-MISC\n\n"
        "x N O\n-DOCSTART- -DOCSTART- O\n\ny N O\n"
    )
    path = write(tmp_path, text)
    sentences = list(read_conll_sentences(path))
    assert [s.words for s in sentences] == [["De", "tekst"], ["Een", "zin"], ["x"], ["y"]]
    assert [s.doc_start for s in sentences] == [True, True, False, True]
    assert [s.line for s in sentences] == [2, 5, 9, 12]
    assert count_conll(path) == (4, 6)
    docs = list(conll_to_docs(Vocab(), path, task="ner", scheme="IOB2"))
    assert ents(docs[1]) == [(1, 2, "MISC")]
    assert [d.user_data["conll_doc_start"] for d in docs] == [True, True, False, True]


@pytest.mark.parametrize("scheme", ["IOB1", "IOB2"])
def test_conll_to_docs_ner(tmp_path, scheme):
    # Decoding is conlleval's in both schemes (IOB1 input read as IOB2 gives
    # the same entities); the schemes differ in encoding, see below.
    docs = list(conll_to_docs(Vocab(), write(tmp_path, NER_4), task="ner", scheme=scheme))
    assert len(docs) == 3
    assert ents(docs[0]) == [(0, 1, "ORG"), (2, 3, "MISC")]
    assert ents(docs[1]) == [(0, 2, "PER")]
    assert ents(docs[2]) == [(0, 1, "LOC"), (1, 2, "LOC"), (2, 5, "LOC")]
    for doc in docs:
        assert all(token.ent_iob_ in ("B", "I", "O") for token in doc)
        assert doc.has_annotation("SENT_START")
        assert [t.is_sent_start for t in doc] == [True] + [False] * (len(doc) - 1)
        assert doc.text_with_ws.endswith(doc[-1].text)
        assert not doc.has_annotation("TAG")
    assert docs[0].text == "EU rejects German call ."


def test_conll_to_docs_chunk_three_columns(tmp_path):
    text = "Confidence NN B-NP\nin IN B-PP\nthe DT B-NP\npound NN I-NP\nis VBZ B-VP\n\n"
    path = write(tmp_path, text)
    (doc,) = conll_to_docs(Vocab(), path, task="chunk", scheme="IOB2", spans_key="np")
    assert [(s.start, s.end, s.label_) for s in doc.spans["np"]] == [
        (0, 1, "NP"),
        (1, 2, "PP"),
        (2, 4, "NP"),
        (4, 5, "VP"),
    ]
    assert not doc.has_annotation("ENT_IOB")
    # the POS column of the same file
    (doc,) = conll_to_docs(Vocab(), path, task="pos", column=1)
    assert [t.tag_ for t in doc] == ["NN", "IN", "DT", "NN", "VBZ"]


def test_conll_to_docs_pos_two_columns_tabs(tmp_path):
    path = write(tmp_path, "Pierre\tNNP\nVinken\tNNP\n,\t,\n\n61\tCD\n")
    docs = list(conll_to_docs(Vocab(), path, task="pos"))
    assert [[t.tag_ for t in doc] for doc in docs] == [["NNP", "NNP", ","], ["CD"]]
    assert [doc.user_data["conll_line"] for doc in docs] == [1, 5]


def test_mixed_whitespace_and_crlf(tmp_path):
    path = write(tmp_path, "a \t NN  O\r\nb\tNN\tI-X \r\n\r\n")
    (sentence,) = read_conll_sentences(path)
    assert sentence.columns == [["a", "NN", "O"], ["b", "NN", "I-X"]]


def test_non_ascii_space_is_part_of_a_token(tmp_path):
    path = write(tmp_path, "10\u00a0000 O\nb O\n")
    (sentence,) = read_conll_sentences(path)
    assert sentence.words == ["10\u00a0000", "b"]


def test_gzip(tmp_path):
    path = tmp_path / "data.txt.gz"
    with gzip.open(path, "wt", encoding="utf-8") as file_:
        file_.write("Coruña NC B-LOC\n, Fc O\n")
    (doc,) = conll_to_docs(Vocab(), path, task="ner", scheme="IOB2")
    assert doc[0].text == "Coruña"
    assert ents(doc) == [(0, 1, "LOC")]


def test_latin1_fallback_warns(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("Coruña NC B-LOC\n".encode("latin-1"))
    with pytest.warns(UserWarning, match="not valid UTF-8.*latin-1"):
        (sentence,) = read_conll_sentences(path)
    assert sentence.words == ["Coruña"]


@pytest.mark.parametrize(
    "text,line,message",
    [
        ("a NN O\nb NN\n", 2, "expected 3 columns .as on line 1., found 2"),
        ("-DOCSTART- -X- O O\n\na O\n\nb NN I-NP O\n", 5, "expected 2 columns"),
        ("a O\n\nb\n", 3, "expected 2 columns"),
        ("a\nb\n", 1, "expected at least 2 columns, found 1"),
    ],
)
def test_bad_column_counts(tmp_path, text, line, message):
    path = write(tmp_path, text, name="bad.txt")
    with pytest.raises(ValueError, match=f"bad.txt:{line}: {message}"):
        list(read_conll_sentences(path))


def test_bad_tags_name_file_and_line(tmp_path):
    path = write(tmp_path, "a O\n\nb O\nc E-X\n", name="bad.txt")
    with pytest.raises(ValueError, match=r"bad.txt:3: .*Position 1: Invalid IOB2 tag 'E-X'"):
        list(conll_to_docs(Vocab(), path, task="ner", scheme="IOB2"))


def test_bad_options(tmp_path):
    path = write(tmp_path, "a NN O\n")
    with pytest.raises(ValueError, match="Unknown task 'tag'"):
        list(conll_to_docs(Vocab(), path, task="tag"))
    with pytest.raises(ValueError, match="Unknown tag scheme 'BIO'"):
        list(conll_to_docs(Vocab(), path, task="ner", scheme="BIO"))
    for column in (0, 3, -3, -4):
        with pytest.raises(ValueError, match=f"column {column} is not a tag column"):
            list(conll_to_docs(Vocab(), path, task="pos", column=column))


def test_convert_round_trip(tmp_path):
    path = write(tmp_path, NER_4)
    out = tmp_path / "out" / "train.spacy"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert convert(path, out, task="ner", scheme="IOB1") == (3, 12)
    docs = load(out)
    sentences = list(read_conll_sentences(path))
    for doc, sentence in zip(docs, sentences):
        assert [t.text for t in doc] == sentence.words
        tags = [fields[-1] for fields in sentence.columns]
        assert spans_to_tags(len(doc), ents(doc), "IOB1") == tags
    assert [t.ent_iob_ for t in docs[2]] == ["B", "B", "B", "I", "I"]
    # without store_user_data the DocBin stays lean
    assert docs[0].user_data == {}


def test_convert_iob1_data_as_iob2_warns(tmp_path):
    path = write(tmp_path, NER_4, name="eng.txt")
    with pytest.warns(
        UserWarning, match="eng.txt: 3 of 3 sentences .*not canonical IOB2 .first at line 3"
    ):
        convert(path, tmp_path / "out.spacy", task="ner", scheme="IOB2")
    docs = load(tmp_path / "out.spacy")
    assert ents(docs[2]) == [(0, 1, "LOC"), (1, 2, "LOC"), (2, 5, "LOC")]
    tags = [t.ent_iob_ + "-" + t.ent_type_ if t.ent_type_ else "O" for t in docs[2]]
    assert tags == ["B-LOC", "B-LOC", "B-LOC", "I-LOC", "I-LOC"]


def test_convert_chunk_and_pos(tmp_path):
    path = write(tmp_path, NER_4)
    out = tmp_path / "chunks.spacy"
    assert convert(path, out, task="chunk", column=2, scheme="IOB1", spans_key="np") == (3, 12)
    docs = load(out)
    assert [(s.start, s.end, s.label_) for s in docs[0].spans["np"]] == [
        (0, 1, "NP"),
        (1, 2, "VP"),
        (2, 4, "NP"),
    ]
    assert convert(path, tmp_path / "pos.spacy", task="pos", column=1) == (3, 12)
    assert [t.tag_ for t in load(tmp_path / "pos.spacy")[0]] == ["NNP", "VBZ", "JJ", "NN", "."]


def test_convert_store_user_data(tmp_path):
    out = tmp_path / "out.spacy"
    convert(write(tmp_path, NER_4), out, task="ner", store_user_data=True)
    assert [doc.user_data for doc in load(out)] == [
        {"conll_doc_start": True, "conll_line": 3},
        {"conll_doc_start": False, "conll_line": 9},
        {"conll_doc_start": True, "conll_line": 14},
    ]


def test_convert_expectations(tmp_path):
    path = write(tmp_path, NER_4)
    convert(path, tmp_path / "a.spacy", task="ner", expect_sentences=3, expect_tokens=12)
    with pytest.raises(ValueError, match="expected 4 sentences, found 3"):
        convert(path, tmp_path / "a.spacy", task="ner", expect_sentences=4)
    with pytest.raises(ValueError, match="expected 11 tokens, found 12"):
        convert(path, tmp_path / "a.spacy", task="ner", expect_tokens=11)


def test_convert_warns_about_non_canonical_tags(tmp_path):
    path = write(tmp_path, "a I-X\nb I-X\n\nc B-X\n\nd O\ne I-Y\n", name="esp.txt")
    with pytest.warns(
        UserWarning, match="esp.txt: 2 of 3 sentences .*not canonical IOB2 .first at line 1"
    ):
        convert(path, tmp_path / "a.spacy", task="ner", scheme="IOB2")
    assert [ents(doc) for doc in load(tmp_path / "a.spacy")] == [
        [(0, 2, "X")],
        [(0, 1, "X")],
        [(1, 2, "Y")],
    ]


def test_main(tmp_path, capsys):
    path = write(tmp_path, NER_4)
    out = tmp_path / "out.spacy"
    assert main([str(path), str(out), "--task", "ner", "--expect-sentences", "3"]) == 0
    assert capsys.readouterr().out.strip() == f"sentences=3 tokens=12 -> {out}"
    assert main([str(path), str(out), "--task", "ner", "--expect-tokens", "1"]) == 1
    assert "expected 1 tokens, found 12" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.txt"), str(out), "--task", "ner"]) == 1
    assert "missing.txt" in capsys.readouterr().err


@pytest.mark.slow
def test_command_line(tmp_path):
    path = write(tmp_path, "a NN B-NP\nb NN I-NP\n\nc VB B-VP\n")
    out = tmp_path / "out.spacy"
    cmd = [sys.executable, "-m", "spacy_lmcrf.conll", str(path), str(out)]
    result = subprocess.run(
        cmd + ["--task", "chunk", "--scheme", "IOB2"], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"sentences=2 tokens=3 -> {out}"
    result = subprocess.run(
        cmd + ["--task", "chunk", "--expect-sentences", "5"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == f"Error: {path}: expected 5 sentences, found 2"


def test_split_dev(tmp_path):
    lines = "".join(f"w{i} NN O\n\n" for i in range(50))
    docs_path = tmp_path / "all.spacy"
    convert(write(tmp_path, lines), docs_path, task="pos")
    train_a, dev_a = tmp_path / "a" / "train.spacy", tmp_path / "a" / "dev.spacy"
    assert split_dev(docs_path, train_a, dev_a, n_dev=10, seed=1) == (40, 10)
    train = [doc.text for doc in load(train_a)]
    dev = [doc.text for doc in load(dev_a)]
    assert len(dev) == 10 and sorted(train + dev) == sorted(f"w{i}" for i in range(50))
    assert train == sorted(train, key=lambda w: int(w[1:]))
    split_dev(docs_path, tmp_path / "t.spacy", tmp_path / "d.spacy", n_dev=10, seed=1)
    assert [doc.text for doc in load(tmp_path / "d.spacy")] == dev
    split_dev(docs_path, tmp_path / "t.spacy", tmp_path / "d.spacy", n_dev=10, seed=2)
    assert [doc.text for doc in load(tmp_path / "d.spacy")] != dev
    with pytest.raises(ValueError, match="can't hold out 50 of 50"):
        split_dev(docs_path, train_a, dev_a, n_dev=50, seed=1)


def test_split_dev_command_line(tmp_path, capsys):
    docs_path = tmp_path / "all.spacy"
    convert(write(tmp_path, "a NN O\n\nb NN O\n\nc NN O\n"), docs_path, task="pos")
    args = ["split-dev", str(docs_path), str(tmp_path / "t.spacy"), str(tmp_path / "d.spacy")]
    assert main(args + ["--n-dev", "1", "--seed", "3"]) == 0
    assert capsys.readouterr().out.startswith("train=2 -> ")
    assert main(args + ["--n-dev", "5"]) == 1


def test_module_program_runs_every_conll_command(tmp_path, capsys):
    """`python -m spacy_lmcrf.conll COMMAND`: the commands of `spacy lmcrf`, convert by
    default."""
    path = write(tmp_path, NER_4)
    docs = tmp_path / "all.spacy"
    assert main(["convert", str(path), str(docs), "--task", "ner"]) == 0
    assert main(["count", str(path), "--expect-sentences", "3", "--expect-tokens", "12"]) == 0
    assert main(["slice", str(docs), str(tmp_path / "s.spacy"), "--start", "1", "--end", "3"]) == 0
    assert main(["sample", str(docs), str(tmp_path / "f.spacy"), "--fraction", "0.5"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] == [
        f"{path}: sentences=3 tokens=12",
        f"docs 1:3 (2) -> {tmp_path / 's.spacy'}",
        f"2 docs (0.5, seed 0) -> {tmp_path / 'f.spacy'}",
    ]
    assert main(["count", str(path), "--expect-sentences", "4"]) == 1
    assert capsys.readouterr().err == f"Error: {path}: expected 4 sentences, found 3\n"
    assert main(["slice", str(docs), str(tmp_path / "s.spacy"), "--start", "1"]) == 2  # usage


# The shipped demo samples (no shared data needed).


@pytest.mark.parametrize(
    "name,n_sentences,n_tokens,n_ents,n_docstarts",
    [("train.iob", 300, 4782, 560, 28), ("dev.iob", 100, 1350, 198, 6)],
)
def test_conll03_sample_converts_losslessly(
    tmp_path, name, n_sentences, n_tokens, n_ents, n_docstarts
):
    path = ASSETS / "conll03_sample" / name
    out = tmp_path / "sample.spacy"
    assert convert(
        path, out, task="ner", scheme="IOB1", expect_sentences=n_sentences, expect_tokens=n_tokens
    ) == (n_sentences, n_tokens)
    docs = load(out)
    assert sum(len(doc.ents) for doc in docs) == n_ents
    for doc, sentence in zip(docs, read_conll_sentences(path)):
        tags = [fields[3] for fields in sentence.columns]
        assert spans_to_tags(len(doc), ents(doc), "IOB1") == tags
    assert sum(s.doc_start for s in read_conll_sentences(path)) == n_docstarts
    assert path.stat().st_size < 100_000


def test_glove_sample_matches_conll03_sample():
    words = {
        sentence.words[i].lower()
        for name in ("train.iob", "dev.iob")
        for sentence in read_conll_sentences(ASSETS / "conll03_sample" / name)
        for i in range(len(sentence.words))
    }
    path = ASSETS / "glove_sample" / "glove.6B.50d.sample.txt"
    rows = path.read_text(encoding="utf-8").splitlines()
    vocab = [row.split(" ")[0] for row in rows]
    assert len(vocab) == len(set(vocab)) == 1851
    assert set(vocab) <= words
    assert all(len(row.split(" ")) == 51 for row in rows)
    assert path.stat().st_size < 1_000_000


# The full corpora under shared/data (skipped when absent).

CORPORA = {
    # path: (task, column, scheme, sentences, tokens)
    "conll2003_en/eng.train.gz": ("ner", -1, "IOB1", 14041, 203621),
    "conll2003_en/eng.testa.gz": ("ner", -1, "IOB1", 3250, 51362),
    "conll2003_en/eng.testb.gz": ("ner", -1, "IOB1", 3453, 46435),
    "conll2000/train.txt.gz": ("chunk", -1, "IOB2", 8936, 211727),
    "conll2000/test.txt.gz": ("chunk", -1, "IOB2", 2012, 47377),
    "conll2002/esp.train.gz": ("ner", -1, "IOB2", 8323, 264715),
    "conll2002/esp.testa.gz": ("ner", -1, "IOB2", 1915, 52923),
    "conll2002/esp.testb.gz": ("ner", -1, "IOB2", 1517, 51533),
    "wsj_pos/nltk_treebank_sample.pos.gz": ("pos", -1, "IOB1", 3914, 94084),
}
# Converted in full (the others are only read and counted, to keep the tests fast).
CONVERTED = [
    "conll2003_en/eng.train.gz",
    "conll2003_en/eng.testa.gz",
    "conll2003_en/eng.testb.gz",
    "conll2000/test.txt.gz",
    "conll2002/esp.testb.gz",
    "wsj_pos/nltk_treebank_sample.pos.gz",
]


def corpus(name: str) -> Path:
    path = DATA / name
    if not path.exists():
        pytest.skip(f"{path} not available (set SPACY_LMCRF_DATA)")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CORPORA))
def test_corpus_counts(name):
    path = corpus(name)
    _, column, _, n_sentences, n_tokens = CORPORA[name]
    sentences = list(read_conll_sentences(path))
    assert len(sentences) == n_sentences
    assert sum(len(s.words) for s in sentences) == n_tokens
    assert count_conll(path) == (n_sentences, n_tokens)
    assert not any(word.startswith("-DOCSTART-") for s in sentences for word in s.words)


def test_conll2003_docstarts():
    for name, n_docs in (("eng.train.gz", 946), ("eng.testa.gz", 216), ("eng.testb.gz", 231)):
        sentences = read_conll_sentences(corpus(f"conll2003_en/{name}"))
        assert sum(s.doc_start for s in sentences) == n_docs


@pytest.mark.slow
@pytest.mark.parametrize("name", CONVERTED)
def test_corpus_converts_losslessly(tmp_path, name):
    path = corpus(name)
    task, column, scheme, n_sentences, n_tokens = CORPORA[name]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = convert(
            path,
            tmp_path / "out.spacy",
            task=task,
            column=column,
            scheme=scheme,
            expect_sentences=n_sentences,
            expect_tokens=n_tokens,
        )
    assert result == (n_sentences, n_tokens)
    # CoNLL-2002 has a few sentences that start with I- (read like conlleval)
    if name.startswith("conll2002/"):
        assert len(caught) == 1
        assert f"1 of {n_sentences} sentences have tags that are not canonical IOB2" in str(
            caught[0].message
        )
    else:
        assert not caught


def test_conll2003_is_canonical_iob1():
    """Every entity and chunk of eng.train re-encodes to exactly its input tags."""
    for sentence in read_conll_sentences(corpus("conll2003_en/eng.train.gz")):
        for column in (2, 3):
            tags = [fields[column] for fields in sentence.columns]
            assert spans_to_tags(len(tags), tags_to_spans(tags, "IOB1"), "IOB1") == tags


def test_glove_sample_is_the_filtered_shared_file():
    source = corpus("vectors/glove.6B.50d.top100k-plus-bench.txt.gz")
    sample = (ASSETS / "glove_sample" / "glove.6B.50d.sample.txt").read_text(encoding="utf-8")
    words = {
        word.lower()
        for name in ("train.iob", "dev.iob")
        for sentence in read_conll_sentences(ASSETS / "conll03_sample" / name)
        for word in sentence.words
    }
    with gzip.open(source, "rt", encoding="utf-8") as file_:
        expected = "".join(line for line in file_ if line.split(" ", 1)[0] in words)
    assert sample == expected


def test_sample_keeps_a_seeded_fraction_in_order(tmp_path):
    from spacy_lmcrf.conll import sample_docs

    vocab = Vocab()
    docs = [Doc(vocab, words=[f"w{i}"]) for i in range(20)]
    DocBin(docs=docs).to_disk(tmp_path / "all.spacy")
    assert sample_docs(tmp_path / "all.spacy", tmp_path / "a.spacy", 0.3, seed=1) == 6
    sample_docs(tmp_path / "all.spacy", tmp_path / "b.spacy", 0.3, seed=1)
    read = lambda name: [d.text for d in DocBin().from_disk(tmp_path / name).get_docs(vocab)]
    assert read("a.spacy") == read("b.spacy")
    assert read("a.spacy") == sorted(read("a.spacy"), key=lambda w: int(w[1:]))
    with pytest.raises(ValueError, match="fraction"):
        sample_docs(tmp_path / "all.spacy", tmp_path / "c.spacy", 0.0, seed=1)
