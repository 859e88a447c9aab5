"""spacy_lmcrf.conlleval counts like the conlleval Perl script and like spaCy's Scorer."""

import os
import random
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import pytest
import spacy
from spacy.scorer import Scorer
from spacy.tokens import Doc, Span
from spacy.training import Example

from spacy_lmcrf.conlleval import (
    ConllevalCounts,
    conlleval_metrics,
    count_sentence,
    evaluate_file,
    format_report,
    main,
    read_conlleval,
    write_conlleval,
)

LABELS = ["PER", "LOC", "X-Y"]

# A known case, worked out by hand: gold PER LOC ORG MISC; predicted PER ORG ORG,
# of which PER and the second ORG are right; Berlin and German are tagged wrong.
KNOWN = """\
Peter B-PER B-PER
Blackburn I-PER I-PER
lives O O
in O O
Berlin B-LOC B-ORG

EU B-ORG B-ORG
rejects O O
German B-MISC O
call O O
"""
KNOWN_REPORT = """\
processed 9 tokens with 4 phrases; found: 3 phrases; correct: 2.
accuracy:  77.78%; precision:  66.67%; recall:  50.00%; FB1:  57.14
              LOC: precision:   0.00%; recall:   0.00%; FB1:   0.00  0
             MISC: precision:   0.00%; recall:   0.00%; FB1:   0.00  0
              ORG: precision:  50.00%; recall: 100.00%; FB1:  66.67  2
              PER: precision: 100.00%; recall: 100.00%; FB1: 100.00  1
"""


# ---------------------------------------------------------------------------
# An independent re-implementation of the Perl script's main loop, rule by rule
# (conlleval 2004-01-26): sentence breaks are processed as a token "-X- O O",
# a chunk is correct when gold and guess start together with the same type and
# then end together. `iobes` adds the usual extension for E-/S- tags.


def _split(tag: str) -> Tuple[str, str]:
    prefix, sep, label = tag.partition("-")
    return (prefix, label) if sep else (tag, "")


def _end_of_chunk(prev: str, tag: str, prev_type: str, type_: str, iobes: bool) -> bool:
    end = (prev, tag) in {("B", "B"), ("B", "O"), ("I", "B"), ("I", "O")}
    end |= (prev, tag) in {("E", "E"), ("E", "I"), ("E", "O"), ("I", "O")}
    end |= prev != "O" and prev != "." and prev_type != type_
    end |= prev in ("]", "[")
    if iobes:
        end |= prev in ("E", "S") or (prev in ("B", "I") and tag == "S")
    return end


def _start_of_chunk(prev: str, tag: str, prev_type: str, type_: str, iobes: bool) -> bool:
    start = (prev, tag) in {("B", "B"), ("I", "B"), ("O", "B"), ("O", "I")}
    start |= (prev, tag) in {("E", "E"), ("E", "I"), ("O", "E"), ("O", "I")}
    start |= tag != "O" and tag != "." and prev_type != type_
    start |= tag in ("[", "]")
    if iobes:
        start |= tag in ("B", "S") or (prev == "S" and tag in ("E", "I"))
    return start


def perl_counts(sentences: Sequence[Tuple[List[str], List[str]]], iobes: bool = False) -> Dict:
    stream = []
    for gold, pred in sentences:
        stream.extend((False, g, p) for g, p in zip(gold, pred))
        stream.append((True, "O", "O"))
    correct_chunk, found_correct, found_guessed = Counter(), Counter(), Counter()
    tokens = correct_tags = 0
    in_correct = False
    last_correct, last_correct_type, last_guessed, last_guessed_type = "O", "", "O", ""
    for boundary, gold, pred in stream:
        correct, correct_type = _split(gold)
        guessed, guessed_type = _split(pred)
        if boundary:
            guessed = "O"
        gold_end = _end_of_chunk(last_correct, correct, last_correct_type, correct_type, iobes)
        pred_end = _end_of_chunk(last_guessed, guessed, last_guessed_type, guessed_type, iobes)
        if in_correct:
            if gold_end and pred_end and last_guessed_type == last_correct_type:
                in_correct = False
                correct_chunk[last_correct_type] += 1
            elif gold_end != pred_end or guessed_type != correct_type:
                in_correct = False
        gold_start = _start_of_chunk(last_correct, correct, last_correct_type, correct_type, iobes)
        pred_start = _start_of_chunk(last_guessed, guessed, last_guessed_type, guessed_type, iobes)
        if gold_start and pred_start and guessed_type == correct_type:
            in_correct = True
        if gold_start:
            found_correct[correct_type] += 1
        if pred_start:
            found_guessed[guessed_type] += 1
        if not boundary:
            correct_tags += correct == guessed and guessed_type == correct_type
            tokens += 1
        last_guessed, last_correct = guessed, correct
        last_guessed_type, last_correct_type = guessed_type, correct_type
    if in_correct:
        correct_chunk[last_correct_type] += 1
    return {
        "tokens": tokens,
        "correct_tags": correct_tags,
        "correct": +correct_chunk,
        "gold": +found_correct,
        "found": +found_guessed,
    }


# ---------------------------------------------------------------------------


def random_tags(rng: random.Random, n: int, prefixes: str) -> List[str]:
    """Any sequence of the prefixes' tags, valid or not."""
    return [
        "O" if rng.random() < 0.3 else f"{rng.choice(prefixes)}-{rng.choice(LABELS)}"
        for _ in range(n)
    ]


def random_spans(rng: random.Random, n: int) -> List[Tuple[int, int, str]]:
    spans, i = [], 0
    while i < n:
        if rng.random() < 0.5:
            end = rng.randint(i + 1, min(n, i + 3))
            spans.append((i, end, rng.choice(LABELS)))
            i = end
        else:
            i += 1
    return spans


def iob2(n: int, spans: Sequence[Tuple[int, int, str]]) -> List[str]:
    tags = ["O"] * n
    for start, end, label in spans:
        tags[start:end] = [f"B-{label}"] + [f"I-{label}"] * (end - start - 1)
    return tags


def random_corpus(seed: int, prefixes: str) -> List[Tuple[List[str], List[str]]]:
    rng = random.Random(seed)
    sentences = []
    for _ in range(rng.randint(1, 6)):
        n = rng.randint(1, 12)
        sentences.append((random_tags(rng, n, prefixes), random_tags(rng, n, prefixes)))
    return sentences


def our_counts(sentences, scheme: str) -> Dict:
    counts = ConllevalCounts()
    for gold, pred in sentences:
        counts += count_sentence(gold, pred, scheme)
    return {
        "tokens": counts.tokens,
        "correct_tags": counts.correct_tags,
        "correct": +counts.correct,
        "gold": +counts.found_gold,
        "found": +counts.found_pred,
    }


def write_sentences(path: Path, sentences) -> Path:
    lines = []
    for i, (gold, pred) in enumerate(sentences):
        lines.extend(f"w{i}_{j} {g} {p}" for j, (g, p) in enumerate(zip(gold, pred)))
        lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf8")
    return path


@pytest.mark.parametrize("seed", range(200))
def test_counts_equal_the_perl_rules_on_iob(seed):
    sentences = random_corpus(seed, "BI")
    expected = perl_counts(sentences)
    assert our_counts(sentences, "IOB2") == expected
    assert our_counts(sentences, "IOB1") == expected


@pytest.mark.parametrize("seed", range(200))
def test_counts_equal_the_iobes_extension_on_bioes(seed):
    sentences = random_corpus(seed, "BIES")
    assert our_counts(sentences, "BIOES") == perl_counts(sentences, iobes=True)


@pytest.mark.parametrize(
    "gold,pred",
    [
        (["O", "I-PER", "I-PER"], ["B-PER", "I-PER", "O"]),
        (["B-PER", "I-LOC"], ["B-PER", "B-LOC"]),
        (["I-PER", "B-PER", "I-PER"], ["I-PER", "I-PER", "I-PER"]),
        (["B-X-Y", "I-X-Y", "O"], ["B-X-Y", "I-X-Y", "O"]),
        (["O", "O"], ["O", "O"]),
        ([], []),
    ],
)
def test_hand_made_cases_equal_the_perl_rules(gold, pred):
    assert our_counts([(gold, pred)], "IOB2") == perl_counts([(gold, pred)])


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(100))
def test_micro_and_per_type_scores_equal_spacy_scorer(seed):
    rng = random.Random(seed)
    vocab = spacy.blank("en").vocab
    counts, examples = ConllevalCounts(), []
    for _ in range(rng.randint(1, 5)):
        n = rng.randint(1, 10)
        gold, pred = iob2(n, random_spans(rng, n)), iob2(n, random_spans(rng, n))
        words = [f"w{i}" for i in range(n)]
        examples.append(
            Example(Doc(vocab, words=words, ents=pred), Doc(vocab, words=words, ents=gold))
        )
        counts += count_sentence(gold, pred, "IOB2")
    ours = conlleval_metrics(counts)
    theirs = Scorer.score_spans(examples, "ents")
    if theirs["ents_f"] is None:
        assert ours["gold"] == ours["found"] == 0
        return
    assert ours["precision"] == pytest.approx(100 * theirs["ents_p"], abs=1e-9)
    assert ours["recall"] == pytest.approx(100 * theirs["ents_r"], abs=1e-9)
    assert ours["f1"] == pytest.approx(100 * theirs["ents_f"], abs=1e-9)
    assert set(ours["per_type"]) == set(theirs["ents_per_type"])
    for label, scores in theirs["ents_per_type"].items():
        assert ours["per_type"][label]["precision"] == pytest.approx(100 * scores["p"], abs=1e-9)
        assert ours["per_type"][label]["recall"] == pytest.approx(100 * scores["r"], abs=1e-9)
        assert ours["per_type"][label]["f1"] == pytest.approx(100 * scores["f"], abs=1e-9)


def test_known_report(tmp_path):
    path = tmp_path / "known.txt"
    path.write_text(KNOWN, encoding="utf8")
    assert format_report(evaluate_file(path)) == KNOWN_REPORT


def test_cli_prints_the_report(tmp_path, capsys):
    path = tmp_path / "known.txt"
    path.write_text(KNOWN, encoding="utf8")
    assert main([str(path)]) == 0
    assert capsys.readouterr().out == KNOWN_REPORT


def test_cli_errors_are_one_line(tmp_path, capsys):
    """`python -m spacy_lmcrf.conlleval` runs `spacy lmcrf conlleval`: bad input, exit 1."""
    assert main([str(tmp_path / "missing.txt")]) == 1
    assert capsys.readouterr().err == f"Error: conlleval file not found: {tmp_path}/missing.txt\n"
    path = tmp_path / "bad.txt"
    path.write_text("a B-X B-X\nb I-Y\n", encoding="utf8")
    assert main([str(path)]) == 1
    assert capsys.readouterr().err.startswith(f"Error: {path}:2: expected 3 columns")


def test_empty_file_report(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("\n\n", encoding="utf8")
    assert format_report(evaluate_file(path)) == (
        "processed 0 tokens with 0 phrases; found: 0 phrases; correct: 0.\n"
    )


def test_read_columns_boundaries_and_docstart(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text(
        "-DOCSTART- -X- O O\n\nA NN B-PER B-PER\nB NN\tI-PER O\n-X- -X- O O\nC NN O O\n\n\n",
        encoding="utf8",
    )
    sentences = read_conlleval(path)
    assert [s.tokens for s in sentences] == [["-DOCSTART-"], ["A", "B"], ["C"]]
    assert [s.line for s in sentences] == [1, 3, 6]
    assert sentences[1].gold == ["B-PER", "I-PER"] and sentences[1].pred == ["B-PER", "O"]
    assert evaluate_file(path).tokens == 4  # like the script, -DOCSTART- lines count


def test_two_column_lines(tmp_path):
    path = tmp_path / "f.txt"
    path.write_text("B-PER B-PER\nI-PER I-PER\n", encoding="utf8")
    assert read_conlleval(path)[0].tokens == ["", ""]
    assert conlleval_metrics(evaluate_file(path))["f1"] == 100.0


@pytest.mark.parametrize(
    "text,message",
    [
        ("a O O\nb O\n", "expected 3 columns"),
        ("a\nb\n", "at least 2 columns"),
        ("a O O\n\nb X-PER O\n", ":3: in the sentence starting here"),
        ("a O E-PER\n", "Invalid IOB2 tag"),
    ],
)
def test_bad_files_raise(tmp_path, text, message):
    path = tmp_path / "bad.txt"
    path.write_text(text, encoding="utf8")
    with pytest.raises(ValueError, match=message):
        evaluate_file(path)


def _ner_example(vocab, words, gold_ents, pred_ents) -> Example:
    return Example(Doc(vocab, words=words, ents=pred_ents), Doc(vocab, words=words, ents=gold_ents))


@pytest.mark.parametrize("scheme", ["IOB2", "IOB1", "BIOES"])
def test_write_round_trip_ner(tmp_path, scheme):
    vocab = spacy.blank("en").vocab
    examples = [
        _ner_example(
            vocab,
            ["Peter", "Blackburn", "in", "Berlin"],
            ["B-PER", "I-PER", "O", "B-LOC"],
            ["B-PER", "B-PER", "O", "B-LOC"],
        ),
        _ner_example(vocab, ["EU", "rejects"], ["B-ORG", "O"], ["O", "O"]),
        Example(Doc(vocab, words=[]), Doc(vocab, words=[])),
    ]
    path = tmp_path / "out" / "preds.txt"
    assert write_conlleval(examples, path, "ner", scheme=scheme) == (2, 6)
    sentences = read_conlleval(path)
    assert [s.tokens for s in sentences] == [
        ["Peter", "Blackburn", "in", "Berlin"],
        ["EU", "rejects"],
    ]
    if scheme == "IOB2":
        assert sentences[0].pred == ["B-PER", "B-PER", "O", "B-LOC"]
    metrics = conlleval_metrics(evaluate_file(path, scheme))
    assert (metrics["gold"], metrics["found"], metrics["correct"]) == (3, 3, 1)
    theirs = Scorer.score_spans(examples, "ents")
    assert metrics["f1"] == pytest.approx(100 * theirs["ents_f"])


def test_tokens_may_hold_non_ascii_whitespace(tmp_path):
    vocab = spacy.blank("en").vocab
    words = ["1\u00a0000", "km"]
    path = tmp_path / "nbsp.txt"
    write_conlleval([_ner_example(vocab, words, ["B-X", "O"], ["B-X", "O"])], path)
    assert read_conlleval(path)[0].tokens == words
    assert conlleval_metrics(evaluate_file(path))["f1"] == 100.0


def test_write_spans_tags_and_doc_pairs(tmp_path):
    vocab = spacy.blank("en").vocab
    gold = Doc(vocab, words=["The", "dog", "barked"], tags=["DT", "NN", "VBD"])
    pred = Doc(vocab, words=["The", "dog", "barked"], tags=["DT", "VB", "VBD"])
    gold.spans["chunks"] = [Span(gold, 0, 2, "NP"), Span(gold, 2, 3, "VP")]
    pred.spans["chunks"] = [Span(pred, 1, 2, "NP"), Span(pred, 2, 3, "VP")]
    path = tmp_path / "chunks.txt"
    write_conlleval([(gold, pred)], path, "spans", spans_key="chunks")
    assert path.read_text() == "The B-NP O\ndog I-NP B-NP\nbarked B-VP B-VP\n\n"
    write_conlleval([Example(pred, gold)], path, "tags")
    assert path.read_text() == "The DT DT\ndog NN VB\nbarked VBD VBD\n\n"
    assert evaluate_file(path, None).correct_tags == 2


def test_write_refuses_what_it_cannot_write(tmp_path):
    vocab = spacy.blank("en").vocab
    path = tmp_path / "x.txt"
    with pytest.raises(ValueError, match="tokens differ"):
        write_conlleval(
            [(Doc(vocab, words=["a", "b"], ents=["O", "O"]), Doc(vocab, words=["ab"], ents=["O"]))],
            path,
        )
    with pytest.raises(ValueError, match="no entity annotation"):
        write_conlleval([(Doc(vocab, words=["a"]), Doc(vocab, words=["a"], ents=["O"]))], path)
    with pytest.raises(ValueError, match="boundary marker"):
        write_conlleval(
            [(Doc(vocab, words=["-X-"], ents=["O"]), Doc(vocab, words=["-X-"], ents=["O"]))], path
        )
    with pytest.raises(ValueError, match="no doc.spans"):
        write_conlleval([(Doc(vocab, words=["a"]), Doc(vocab, words=["a"]))], path, "spans")
    doc = Doc(vocab, words=["a", "b"])
    doc.spans["chunks"] = [Span(doc, 0, 2, "NP"), Span(doc, 1, 2, "NP")]
    with pytest.raises(ValueError, match="Overlapping"):
        write_conlleval([(doc, doc)], path, "spans")
    with pytest.raises(ValueError, match="empty or whitespace tags"):
        write_conlleval([(Doc(vocab, words=["a"]), Doc(vocab, words=["a"]))], path, "tags")
    with pytest.raises(ValueError, match="Unknown kind"):
        write_conlleval([], path, "pos")


# ---------------------------------------------------------------------------
# The official script itself, where a copy is on this machine.


def _find_conlleval() -> Optional[str]:
    env = os.environ.get("CONLLEVAL_PL")
    if env:
        return env if Path(env).exists() else None
    for name in ("conlleval", "conlleval.pl"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.fixture
def conlleval_pl() -> str:
    script = _find_conlleval()
    if script is None or shutil.which("perl") is None:
        pytest.skip("no conlleval script (set CONLLEVAL_PL) or no perl")
    return script


@pytest.mark.parametrize("seed", range(40))
def test_report_equals_the_official_script(tmp_path, conlleval_pl, seed):
    path = write_sentences(tmp_path / "random.txt", random_corpus(seed, "BI"))
    official = subprocess.run(
        ["perl", conlleval_pl], stdin=path.open("rb"), capture_output=True, text=True, check=True
    ).stdout
    assert format_report(evaluate_file(path)) == official


def test_known_report_equals_the_official_script(tmp_path, conlleval_pl):
    path = tmp_path / "known.txt"
    path.write_text(KNOWN, encoding="utf8")
    official = subprocess.run(
        ["perl", conlleval_pl], stdin=path.open("rb"), capture_output=True, text=True, check=True
    ).stdout
    assert official == KNOWN_REPORT
