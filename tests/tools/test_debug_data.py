"""spacy_lmcrf.debug_data: each check on small handmade docs, a clean corpus that passes, and
the command (registered as cli.py registers it) on the shipped sample and on a broken corpus."""

from typing import List, Optional, Sequence

import pytest
import spacy
import typer
from spacy.tokens import Doc, DocBin, Span
from spacy.training import Example
from typer.testing import CliRunner

from spacy_lmcrf.debug_data import (
    CONTEXT_SETTINGS,
    FAIL,
    GOOD,
    INFO,
    WARN,
    Finding,
    LabelerSpec,
    collect_stats,
    component_findings,
    corpus_findings,
    crosses,
    debug_data_cli,
    labeler_specs,
    overlapping,
    whitespace_problem,
)

from ..util import ROOT, convert_ner_sample

NLP = spacy.blank("en")
NER = LabelerSpec("ner", "lm_crf_ner", "ner", max_length=8, context_length=8)
SPANS = LabelerSpec("chunks", "lm_crf_spans", "spans", spans_key="chunks", max_length=8)
TAGGER = LabelerSpec("pos", "lm_crf_tagger", "tagger", max_length=8, context_length=8)
CLEAN_NER = [
    (
        ["Peter", "Blackburn", "lives", "in", "Berlin", "."],
        ["B-PER", "I-PER", "O", "O", "B-LOC", "O"],
    ),
    (["EU", "rejects", "German", "lamb", "."], ["B-ORG", "O", "B-MISC", "O", "O"]),
]


def example(
    words: Sequence[str],
    ents: Optional[Sequence[Optional[str]]] = None,
    *,
    spaces: Optional[Sequence[bool]] = None,
    sent_starts: Optional[Sequence[int]] = None,
    predicted_sent_starts: Optional[Sequence[int]] = None,
    tags: Optional[Sequence[str]] = None,
    spans: Optional[Sequence[tuple]] = None,
    key: str = "chunks",
) -> Example:
    """A reference doc and a predicted doc with its words and spaces, as
    spacy_lmcrf.GoldTokenCorpus.v1 makes them (no sentence boundaries unless given)."""
    reference = Doc(
        NLP.vocab, words=list(words), spaces=spaces, ents=ents, sent_starts=sent_starts, tags=tags
    )
    if spans is not None:
        reference.spans[key] = [Span(reference, s, e, label=label) for s, e, label in spans]
    predicted = Doc(
        NLP.vocab,
        words=list(words),
        spaces=[bool(t.whitespace_) for t in reference],
        sent_starts=predicted_sent_starts,
    )
    return Example(predicted, reference)


def clean_ner(n: int) -> List[Example]:
    return [example(*CLEAN_NER[i % len(CLEAN_NER)]) for i in range(n)]


def findings(
    spec: LabelerSpec, train: List[Example], dev: List[Example], **kwargs
) -> List[Finding]:
    return component_findings(spec, collect_stats(spec, train), collect_stats(spec, dev), **kwargs)


def levels(found: List[Finding], level: str) -> List[str]:
    return [finding.text for finding in found if finding.level == level]


def test_labeler_specs_read_each_component_and_skip_others():
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    nlp.add_pipe(
        "lm_crf_ner",
        config={"model": {"max_length": 64, "tok2vec": {"max_length": 32}}, "corpus": "en"},
    )
    nlp.add_pipe("lm_crf_spans", name="chunker", config={"spans_key": "chunks"})
    nlp.add_pipe("lm_crf_tagger", name="pos")
    ner, chunker, pos = labeler_specs(nlp)
    assert (ner.name, ner.kind, ner.max_length, ner.context_length, ner.corpus) == (
        "lm_crf_ner",
        "ner",
        64,
        32,
        "en",
    )
    assert (chunker.factory, chunker.kind, chunker.spans_key) == ("lm_crf_spans", "spans", "chunks")
    assert chunker.target == "doc.spans['chunks']"
    assert (pos.kind, pos.target, pos.max_length) == ("tagger", "token.tag_", 128)


def test_a_clean_corpus_passes_every_check():
    found = findings(NER, clean_ner(200), clean_ner(20))
    assert not levels(found, WARN) and not levels(found, FAIL)
    assert "Good amount of examples for all labels (> 50)" in levels(found, GOOD)
    assert len(levels(found, GOOD)) == 6
    general = corpus_findings(clean_ner(200), clean_ner(20), min_docs=100, enough_docs=200)
    assert not levels(general, FAIL)
    # the clean docs repeat, so train and dev share their texts
    assert levels(general, WARN) == ["2 training texts also in evaluation data"]


def test_label_counts_rare_labels_and_dev_labels_missing_from_train():
    train = clean_ner(4)
    dev = [example(["Visit", "Mars", "."], ["O", "B-PLANET", "O"])] + clean_ner(2)
    stats = collect_stats(NER, train)
    assert stats.labels == {"PER": 2, "LOC": 2, "ORG": 2, "MISC": 2}
    found = findings(NER, train, dev)
    assert "1 label(s) in dev but not in train, never predicted: 'PLANET' (1)" in levels(
        found, WARN
    )
    assert "Low number of examples for label 'PER' (2)" in levels(found, WARN)
    assert not levels(findings(NER, train, dev, min_count=1), FAIL)


def test_tokens_without_ner_annotation_are_counted_as_unknown_not_o():
    words = ["Peter", "Smith", "met", "\n", "her"]
    partial = example(words, ["B-PER", "I-PER", None, None, None])
    stats = collect_stats(NER, clean_ner(2) + [partial])
    # the whitespace token without annotation is read as O, not unknown
    assert (stats.n_unknown_tokens, stats.n_docs_with_unknown) == (2, 1)
    warned = levels(findings(NER, clean_ner(2) + [partial], clean_ner(2)), WARN)
    assert (
        "2 train token(s) in 1 annotated doc(s) have no gold tag (ENT_IOB unset): treated as "
        "unknown (their tag is marginalised), not as O"
    ) in warned


def test_docs_without_annotation_are_skipped_and_a_corpus_without_any_fails():
    bare = example(["no", "entities", "here"])
    found = findings(NER, clean_ner(2) + [bare], clean_ner(2))
    assert levels(found, INFO)[0].startswith("1 of 3 train docs carry no NER annotation")
    assert not levels(found, FAIL)
    failed = levels(findings(NER, [bare], [bare]), FAIL)
    assert failed == [
        "None of the 1 training docs carries NER annotation (doc.ents): nothing to learn, "
        "nlp.initialize fails"
    ]


def test_whitespace_entities_fail_in_train_and_warn_in_dev():
    starts = example(["in", "\n", "Berlin"], ["O", "B-LOC", "I-LOC"], spaces=[True, False, False])
    inside = example(
        ["New", "\n", "York"], ["B-LOC", "I-LOC", "I-LOC"], spaces=[True, False, False]
    )
    padded = example(["in", " Berlin"], ["O", "B-LOC"])
    reasons = [whitespace_problem(eg.reference.ents[0]) for eg in (starts, inside, padded)]
    assert reasons == [
        "starts or ends on a whitespace token",
        "contains a whitespace token",
        "has leading or trailing whitespace",
    ]
    found = findings(NER, clean_ner(2) + [starts, inside, padded], clean_ner(2) + [inside])
    assert levels(found, FAIL) == [
        "3 train entities start or end on whitespace or contain it: the component never "
        "predicts such a span"
    ]
    assert any(
        text.startswith("1 dev entities start or end on whitespace") for text in levels(found, WARN)
    )
    failed = next(finding for finding in found if finding.level == FAIL)
    assert failed.details[1] == "doc 3: 'New \\nYork' (LOC, tokens 0-3) contains a whitespace token"


def test_overlapping_spans_fail_for_lm_crf_spans():
    words = ["the", "big", "dog", "barked"]
    clean = example(words, spans=[(0, 3, "NP"), (3, 4, "VP")])
    nested = example(words, spans=[(0, 3, "NP"), (1, 3, "NP"), (3, 4, "VP")])
    pairs = overlapping(nested.reference.spans["chunks"])
    assert [(a.start, a.end, b.start, b.end) for a, b in pairs] == [(0, 3, 1, 3)]
    found = findings(SPANS, [clean, nested], [nested])
    assert levels(found, FAIL) == [
        "1 pair(s) of overlapping train spans in doc.spans['chunks']: not allowed "
        "(one tag per token)"
    ]
    assert any("overlapping dev spans" in text for text in levels(found, WARN))
    assert "No overlapping spans" in levels(findings(SPANS, [clean], [clean]), GOOD)


def test_spans_without_a_label_fail_and_docs_without_the_key_are_unannotated():
    words = ["the", "dog", "barked"]
    unlabelled = example(words, spans=[(0, 2, ""), (2, 3, "VP")])
    no_key = example(words)
    stats = collect_stats(SPANS, [unlabelled, no_key])
    assert (stats.n_mine, stats.n_annotated, stats.labels) == (2, 1, {"": 1, "VP": 1})
    found = findings(SPANS, [unlabelled, no_key], [unlabelled])
    assert "Gold spans without a label: the CRF cannot encode them" in levels(found, FAIL)


def test_entities_crossing_a_window_of_the_crf_are_warned_of():
    # no sentence boundaries: the CRF reads windows of 8 tokens, cut before token 8
    words = [f"w{i}" for i in range(10)]
    tags = ["O"] * 6 + ["B-ORG", "I-ORG", "I-ORG", "O"]
    crossing = example(words, tags)
    assert crosses([8], 6, 9) and not crosses([8], 8, 9) and not crosses([8], 2, 8)
    found = findings(NER, clean_ner(2) + [crossing], clean_ner(2))
    assert not levels(found, FAIL)
    assert (
        "1 train entities cross the sequences the CRF reads (sentences, or windows of 8 "
        "tokens): it cannot learn them (their tags are left unknown)"
    ) in levels(found, WARN)
    assert (
        "1 train doc(s) without sentence boundaries are longer than max_length (8): cut into "
        "windows of 8 tokens"
    ) in levels(found, WARN)


def test_entities_crossing_sentence_boundaries():
    words = ["He", "met", "Peter", ".", "Smith", "left"]
    tags = ["O", "O", "B-PER", "I-PER", "I-PER", "O"]
    sents = [1, 0, 0, 0, 1, 0]
    # the reader drops the sentences (as GoldTokenCorpus does): spaCy's warning only
    read_whole = example(words, tags, sent_starts=sents)
    found = findings(NER, clean_ner(2) + [read_whole], clean_ner(2))
    assert "1 entities crossing sentence boundaries (1 train, 0 dev)" in levels(found, WARN)
    assert not levels(found, FAIL)
    # the predicted doc has them too (e.g. gold_preproc, a sentencizer): the CRF cuts there
    read_by_sentence = example(words, tags, sent_starts=sents, predicted_sent_starts=sents)
    found = findings(NER, clean_ner(2) + [read_by_sentence], clean_ner(2))
    assert any("cross the sequences" in line for line in levels(found, WARN))


def test_long_sentences_and_docs_whose_sentences_the_reader_drops():
    words = [f"w{i}" for i in range(12)]
    sents = [1] + [0] * 9 + [1, 0]
    long_sentence = example(words, ["O"] * 12, sent_starts=sents, predicted_sent_starts=sents)
    dropped = example(words, ["O"] * 12, sent_starts=sents)
    train = clean_ner(2) + [long_sentence, dropped]
    warned = levels(findings(NER, train, clean_ner(2)), WARN)
    assert "1 train sentence(s) longer than max_length (8): cut into windows of 8 tokens" in warned
    assert (
        "1 train doc(s) without sentence boundaries are longer than max_length (8): cut into "
        "windows of 8 tokens; 1 of them have sentences in the corpus, which the reader does "
        "not pass on"
    ) in warned


def test_tag_counts_tokens_without_tags_and_unseen_dev_tags():
    train = [
        example(["I", "eat", "ham"], tags=["PRP", "VBP", "NN"]),
        example(["They", "eat", "eggs"], tags=["PRP", "VBP", ""]),
    ]
    dev = [example(["Eat", "ham"], tags=["VB", "NN"])]
    stats = collect_stats(TAGGER, train)
    assert stats.labels == {"PRP": 2, "VBP": 2, "NN": 1}
    assert stats.n_unknown_tokens == 1
    found = findings(TAGGER, train, dev)
    assert levels(found, WARN) == [
        "1 label(s) in dev but not in train, never predicted: 'VB' (1)",
        "1 train token(s) in 1 annotated doc(s) have no gold tag (empty token.tag_): treated "
        "as unknown (their tag is marginalised), not as O",
    ]
    assert not levels(found, FAIL)


def test_a_component_reads_only_the_docs_of_its_corpus():
    spec = LabelerSpec("ner_en", "lm_crf_ner", "ner", max_length=8, context_length=8, corpus="en")
    spanish = example(["Pedro", "vive"], ["B-PER", "O"])
    spanish.predicted.user_data["lmcrf_corpus"] = "es"
    stats = collect_stats(spec, clean_ner(2) + [spanish])
    assert (stats.n_examples, stats.n_mine, stats.labels["PER"]) == (3, 2, 1)
    found = findings(spec, clean_ner(2) + [spanish], clean_ner(2))
    assert "1 train docs belong to other corpora than 'en': the component does not read them" in (
        levels(found, INFO)
    )


def test_empty_corpora_fail():
    assert levels(corpus_findings([], clean_ner(2)), FAIL) == ["No training docs"]
    assert levels(corpus_findings(clean_ner(2), []), FAIL) == ["No evaluation docs"]
    assert levels(corpus_findings(clean_ner(50), clean_ner(2)), FAIL) == [
        "Low number of examples to train a new pipeline (50)"
    ]


def test_a_reader_that_retokenises_is_warned_of_and_misaligned_entities_counted():
    reference = Doc(NLP.vocab, words=["Visit", "U.S", "."], spaces=[True, False, False])
    reference.ents = [Span(reference, 1, 2, label="LOC")]
    retokenised = Example(NLP.make_doc(reference.text), reference)
    assert [t.text for t in retokenised.predicted] == ["Visit", "U.S."]
    general = corpus_findings(clean_ner(150) + [retokenised], clean_ner(2))
    assert any(
        text.startswith("1 train examples are predicted on other tokens")
        for text in levels(general, WARN)
    )
    stats = collect_stats(NER, [retokenised])
    assert stats.misaligned_spans == ["doc 0: 'U.S' (LOC, tokens 1-2)"]
    warned = levels(component_findings(NER, stats, collect_stats(NER, clean_ner(2))), WARN)
    assert any(text.startswith("1 train entities do not align to the predicted") for text in warned)


def write_corpus(path, examples: List[Example]) -> str:
    DocBin(docs=[eg.reference for eg in examples], store_user_data=True).to_disk(path)
    return str(path)


def invoke(*args: str):
    """Run the command registered as spacy_lmcrf/cli.py registers it."""
    app = typer.Typer()
    app.command("debug-data", context_settings=CONTEXT_SETTINGS)(debug_data_cli)
    app.command("other")(lambda: None)  # two commands, so the name is needed, as in cli.py
    return CliRunner().invoke(app, ["debug-data", *args], env={"ANSI_COLORS_DISABLED": "1"})


@pytest.mark.slow
def test_the_command_on_the_shipped_sample(tmp_path):
    convert_ner_sample(tmp_path)
    result = invoke(
        str(ROOT / "configs" / "lmcrf_ner.cfg"),
        "--paths.train",
        str(tmp_path / "sample_train.spacy"),
        "--paths.dev",
        str(tmp_path / "sample_dev.spacy"),
    )
    assert result.exit_code == 0, result.output
    assert "300 training docs, 100 evaluation docs" in result.output
    assert "lm_crf_ner (lm_crf_ner: doc.ents)" in result.output
    assert "LOC       225    58" in result.output
    assert "No entities crossing the sequences the CRF reads" in result.output
    assert "⚠ 1 warning" in result.output and "error" not in result.output


@pytest.mark.slow
def test_the_command_exits_with_1_when_a_check_fails(tmp_path):
    broken = example(["in", "\n", "Berlin"], ["O", "B-LOC", "I-LOC"], spaces=[True, False, False])
    train = write_corpus(tmp_path / "train.spacy", clean_ner(120) + [broken])
    dev = write_corpus(tmp_path / "dev.spacy", clean_ner(4))
    result = invoke(
        str(ROOT / "configs" / "lmcrf_ner.cfg"), "--paths.train", train, "--paths.dev", dev, "-V"
    )
    assert result.exit_code == 1, result.output
    assert "✘ 1 train entities start or end on whitespace" in result.output
    assert "doc 120: '\\nBerlin' (LOC, tokens 1-3) starts or ends on a whitespace token" in (
        result.output
    )
    assert "✘ 1 error" in result.output
