"""lm_crf_ner: named entities from a CRF, written to doc.ents with their probabilities."""

from typing import Callable, Iterable, List, Optional, Sequence, Tuple

import numpy
from spacy.attrs import ENT_IOB, IDX, IS_SPACE, ORTH
from spacy.language import Language
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example
from thinc.api import Model

from ..tags import Span as Span3
from ..tags import biluo_to_spans_and_missing, spans_to_tags
from .base import CRFPrediction, CRFSequenceLabeler
from .defaults import DEFAULT_MAX_LOSS_PER_TOKEN, DEFAULT_MODEL

# two docs whose tokens agree on these have the same tokens at the same offsets
TOKEN_IDENTITY = [ORTH, IDX]


@Language.factory(
    "lm_crf_ner",
    assigns=["doc.ents", "token.ent_iob", "token.ent_type", "doc.spans"],
    default_config={
        "model": DEFAULT_MODEL,
        "scheme": "BIOES",
        "margin_cost": 0.0,
        "corpus": None,
        "max_loss_per_token": DEFAULT_MAX_LOSS_PER_TOKEN,
        "spans_key": None,
        "overwrite_ents": False,
        "scorer": {"@scorers": "spacy.ner_scorer.v1"},
    },
    default_score_weights={"ents_f": 1.0, "ents_p": 0.0, "ents_r": 0.0, "ents_per_type": None},
)
def make_lm_crf_ner(
    nlp: Language,
    name: str,
    model: Model,
    scheme: str,
    margin_cost: float,
    corpus: Optional[str],
    max_loss_per_token: float,
    spans_key: Optional[str],
    overwrite_ents: bool,
    scorer: Optional[Callable],
) -> "CRFEntityRecognizer":
    """A CRF named-entity recognizer (LM-LSTM-CRF by default).

    model (Model[List[Doc], CRFScores]): the CRF tagger model.
    scheme (str): the tag scheme of the CRF ("BIOES", "BILUO", "IOB2" or "IOB1").
    margin_cost (float): 0 for the negative log-likelihood, > 0 for softmax-margin.
    corpus (Optional[str]): train on and annotate only docs of this corpus
        (doc.user_data["lmcrf_corpus"], set by spacy_lmcrf.TaskCorpora.v1) or of none.
    spans_key (Optional[str]): where the entities and their probabilities are also kept
        (doc.spans[spans_key], scores in its attrs["scores"]); the component's name if None.
    max_loss_per_token (float): training stops with an error when a batch's loss per
        token exceeds this (a diverged model: a working CRF starts near the log of its
        number of tags) or is not finite; 0: only non-finite losses stop it.
    overwrite_ents (bool): False (as spaCy's ner): entities already on a doc (from an
        entity_ruler upstream, or user code) are kept and the CRF decodes the rest around
        them, their tags fixed; True: they are replaced by the CRF's entities.
    scorer (Optional[Callable]): the scoring method.
    """
    component = CRFEntityRecognizer(
        nlp.vocab,
        model,
        name,
        scheme=scheme,
        margin_cost=margin_cost,
        corpus=corpus,
        max_loss_per_token=max_loss_per_token,
        spans_key=spans_key or name,
        scorer=scorer,
    )
    component.overwrite_ents = overwrite_ents
    component.find_shared_lms(nlp)
    return component


def gold_spans_and_missing(example: Example) -> Tuple[List[Span3], List[bool]]:
    """The reference's entities on the predicted tokens, and which tokens have no gold
    annotation: what biluo_to_spans_and_missing makes of Example.get_aligned_ner().

    When both docs have the same tokens (our corpus readers keep the corpus's tokens)
    they are read from the reference directly: spaCy's alignment costs about 0.9 ms a
    sentence, 5 % of an LM-LSTM-CRF training step."""
    predicted, reference = example.predicted, example.reference
    if not (
        reference.has_annotation("ENT_IOB")
        and len(predicted) == len(reference)
        and numpy.array_equal(
            predicted.to_array(TOKEN_IDENTITY), reference.to_array(TOKEN_IDENTITY)
        )
    ):
        return biluo_to_spans_and_missing(example.get_aligned_ner())
    spans = [(ent.start, ent.end, ent.label_) for ent in reference.ents]
    unknown = (reference.to_array(ENT_IOB) == 0) & ~predicted.to_array(IS_SPACE).astype(bool)
    return spans, unknown.tolist()


class CRFEntityRecognizer(CRFSequenceLabeler):
    """Writes doc.ents (every other token O) and doc.spans[spans_key] with probabilities.

    overwrite_ents (bool): whether the entities already on a doc are replaced (True) or
        kept, the CRF decoding around them (False, the default, as spaCy's ner). Not in
        cfg: the pipeline's config sets it, and it may be changed on a loaded pipeline.
    """

    overwrite_ents = False

    def _labels_from_examples(self, examples: Iterable[Example]) -> Iterable[str]:
        return {ent.label_ for eg in examples for ent in eg.reference.ents}

    def _has_annotation(self, example: Example) -> bool:
        return example.reference.has_annotation("ENT_IOB")

    def _gold_tags(self, example: Example) -> List[Optional[str]]:
        spans, missing = gold_spans_and_missing(example)
        return spans_to_tags(len(example.predicted), spans, self.cfg["scheme"], missing)

    def _preset_ents(self, doc: Doc) -> Sequence[Span]:
        """The entities already on doc that are kept: all unless overwrite_ents."""
        return () if self.overwrite_ents else doc.ents

    def _fixed_spans(self, doc: Doc) -> List[Span3]:
        return [(ent.start, ent.end, ent.label_) for ent in self._preset_ents(doc)]

    def _write_annotations(self, docs: List[Doc], prediction: CRFPrediction) -> None:
        """doc.ents: the decoded entities and, unless overwrite_ents, the entities
        already there (kept as they were, kb_id included; decoding already respected
        them: see _constrained), each with its probability (1 for a kept entity the CRF
        cannot represent); other tokens "O"."""
        # a span labeler has a scheme, so its predictions have spans and scores
        assert prediction.spans is not None and prediction.span_scores is not None
        for doc, spans, scores in zip(docs, prediction.spans, prediction.span_scores):
            kept = {(ent.start, ent.end, ent.label_): ent for ent in self._preset_ents(doc)}
            found = []
            for span, prob in zip(spans, scores.tolist()):
                ent = kept.pop(span) if span in kept else Span(doc, *span[:2], label=span[2])
                found.append((ent, prob))
            found.extend((ent, 1.0) for ent in kept.values())
            found.sort(key=lambda pair: pair[0].start)
            ents = [ent for ent, _ in found]
            doc.set_ents(ents, default="outside")
            group = SpanGroup(doc, name=self.cfg["spans_key"], spans=ents)
            group.attrs["scores"] = numpy.asarray([prob for _, prob in found], dtype="float32")
            doc.spans[self.cfg["spans_key"]] = group
