"""Decoding around preset entities and n-best decoding, checked exactly against an
enumeration of every tag sequence of short docs."""

import itertools
from typing import Callable, List, Sequence, Tuple

import numpy
import pytest
from spacy.tokens import Doc, Span

from spacy_lmcrf.tags import tags_to_spans

from ..util import make_nlp, ner_examples, tag_examples

pytestmark = pytest.mark.usefixtures("single_torch_thread")

WORDS = {
    "BIOES": ["Peter", "lives", "Berlin"],  # 17 tags: 17 ** 3 sequences
    "IOB1": ["Peter", "Blackburn", "in", "Berlin"],  # 9 tags: 9 ** 4 sequences
    "IOB2": ["Peter", "Blackburn", "in", "Berlin"],
}
Span3 = Tuple[int, int, str]


def _ner(scheme: str):
    nlp = make_nlp("lm_crf_ner", {"scheme": scheme})
    nlp.initialize(lambda: ner_examples(nlp))
    return nlp, nlp.get_pipe("lm_crf_ner")


def _enumerate(component, doc: Doc, keep: Callable[[List[str]], bool]):
    """Every tag sequence of doc (one segment) that keep accepts, with its conditional
    probability given the accepted ones, from the model's unconstrained potentials."""
    scores = component.model.predict([doc])
    (group,) = scores.groups
    pots = group.potentials[0].double().numpy()
    names = component.tag_names
    seqs = numpy.array(list(itertools.product(range(len(names)), repeat=len(doc))))
    total = pots[0, 0, seqs[:, 0]]
    for t in range(1, len(doc)):
        total = total + pots[t, seqs[:, t - 1], seqs[:, t]]
    tags = [[names[i] for i in seq] for seq in seqs]
    accepted = numpy.array([keep(seq_tags) for seq_tags in tags])
    log_probs = total[accepted] - numpy.logaddexp.reduce(total[accepted])
    return [tags[i] for i in numpy.flatnonzero(accepted)], numpy.exp(log_probs)


def _keeps(scheme: str, presets: Sequence[Span3], labels) -> Callable[[List[str]], bool]:
    def keep(tags: List[str]) -> bool:
        spans = tags_to_spans(tags, scheme)
        for start, end, label in presets:
            if label in labels:
                if (start, end, label) not in spans:
                    return False
            elif any(tag != "O" for tag in tags[start:end]):
                return False
        return True

    return keep


PRESETS = [
    [],
    [(1, 2, "ORG")],
    [(0, 1, "PER")],
    [(0, 2, "ORG")],
    [(1, 3, "LOC")],
    [(0, 1, "PER"), (1, 2, "PER")],  # adjacent, same label (IOB1 needs B-)
    [(1, 2, "GPE")],  # a label the CRF does not know: its tokens are "O"
]


@pytest.mark.parametrize("scheme", ["BIOES", "IOB1", "IOB2"])
@pytest.mark.parametrize("presets", PRESETS)
def test_decoding_around_preset_entities_is_exact(scheme, presets):
    """Viterbi, the span probabilities and the n best sequences, with preset entities,
    equal those of the sequences whose spans include every preset entity (its tokens
    "O" for an unknown label), enumerated."""
    nlp, ner = _ner(scheme)
    words = WORDS[scheme]
    presets = [p for p in presets if p[1] <= len(words)]
    doc = Doc(nlp.vocab, words=words)
    doc.set_ents([Span(doc, s, e, label=label) for s, e, label in presets])
    tags, probs = _enumerate(ner, doc, _keeps(scheme, presets, ner.labels))
    order = numpy.argsort(-probs, kind="stable")

    prediction = ner.predict([doc])
    assert prediction.tags[0] == tags[order[0]]
    for span, score in zip(prediction.spans[0], prediction.span_scores[0]):
        expected = sum(p for t, p in zip(tags, probs) if span in tags_to_spans(t, scheme))
        assert float(score) == pytest.approx(expected, abs=1e-5)
    for preset in presets:
        if preset[2] in ner.labels:
            assert preset in prediction.spans[0]

    (sentence,) = ner.nbest([doc], k=5)[0]
    assert (sentence.start, sentence.end) == (0, len(words))
    assert len(sentence.paths) == min(5, len(tags))
    for rank, path in enumerate(sentence.paths):
        assert path.tags == tags[order[rank]]
        assert path.probability == pytest.approx(float(probs[order[rank]]), rel=1e-9, abs=1e-12)
        assert path.spans == tags_to_spans(path.tags, scheme)

    ner.set_annotations([doc], prediction)
    ents = [(e.start, e.end, e.label_) for e in doc.ents]
    for preset in presets:
        assert preset in ents
    scores = dict(zip(ents, doc.spans["lm_crf_ner"].attrs["scores"].tolist()))
    for preset in presets:
        assert scores[preset] == pytest.approx(1.0, abs=1e-5)


def test_nbest_without_presets_sums_to_one_over_all_sequences():
    """With k as large as the number of valid sequences, the n best are all of them:
    their probabilities sum to 1 and every one is a valid BIOES sequence."""
    nlp, ner = _ner("BIOES")
    doc = Doc(nlp.vocab, words=["Peter", "lives"])
    tags, probs = _enumerate(ner, doc, lambda seq: True)
    n_valid = int((probs > 1e-100).sum())
    (sentence,) = ner.nbest([doc], k=len(tags))[0]
    assert len(sentence.paths) == n_valid  # forbidden transitions are left out
    assert sum(path.probability for path in sentence.paths) == pytest.approx(1.0, abs=1e-9)


def test_nbest_per_sentence_and_for_a_tagger():
    nlp, ner = _ner("BIOES")
    doc = Doc(nlp.vocab, words="Peter lives . Angela sings".split(), sent_starts=[1, 0, 0, 1, 0])
    sentences = ner.nbest([doc, Doc(nlp.vocab, words=[])], k=2)
    assert [(s.start, s.end) for s in sentences[0]] == [(0, 3), (3, 5)]
    assert sentences[1] == []
    for sentence in sentences[0]:
        assert len(sentence.paths) == 2
        assert sentence.paths[0].probability >= sentence.paths[1].probability
        for path in sentence.paths:
            assert len(path.tags) == sentence.end - sentence.start
            assert all(sentence.start <= s < e <= sentence.end for s, e, _ in path.spans)
    with pytest.raises(ValueError, match="k must be"):
        ner.nbest([doc], k=0)

    tagger_nlp = make_nlp("lm_crf_tagger")
    tagger_nlp.initialize(lambda: tag_examples(tagger_nlp))
    tagger = tagger_nlp.get_pipe("lm_crf_tagger")
    (sentence,) = tagger.nbest([Doc(tagger_nlp.vocab, words=["I", "like", "ham"])], k=3)[0]
    assert [p.spans for p in sentence.paths] == [None] * 3
    best = tagger.predict([Doc(tagger_nlp.vocab, words=["I", "like", "ham"])]).tags[0]
    assert sentence.paths[0].tags == best
