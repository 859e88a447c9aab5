"""lm_crf_spans: non-overlapping labelled spans (e.g. chunks) in doc.spans[spans_key]."""

from typing import Callable, Iterable, List, Optional

from spacy.language import Language
from spacy.tokens import Doc, Span, SpanGroup
from spacy.training import Example
from thinc.api import Model

from ..tags import spans_to_tags
from .base import CRFPrediction, CRFSequenceLabeler, Span3
from .defaults import DEFAULT_MAX_LOSS_PER_TOKEN, DEFAULT_MODEL


@Language.factory(
    "lm_crf_spans",
    assigns=["doc.spans"],
    default_config={
        "model": DEFAULT_MODEL,
        "spans_key": "sc",
        "scheme": "BIOES",
        "margin_cost": 0.0,
        "corpus": None,
        "max_loss_per_token": DEFAULT_MAX_LOSS_PER_TOKEN,
        "scorer": {"@scorers": "spacy.spancat_scorer.v1"},
    },
    default_score_weights={"spans_sc_f": 1.0, "spans_sc_p": 0.0, "spans_sc_r": 0.0},
)
def make_lm_crf_spans(
    nlp: Language,
    name: str,
    model: Model,
    spans_key: str,
    scheme: str,
    margin_cost: float,
    corpus: Optional[str],
    max_loss_per_token: float,
    scorer: Optional[Callable],
) -> "CRFSpanLabeler":
    """A CRF labeler of non-overlapping spans, such as syntactic chunks.

    model (Model[List[Doc], CRFScores]): the CRF tagger model.
    spans_key (str): the doc.spans key read for gold spans and written with predictions
        (scores in attrs["scores"]).
    scheme (str): the tag scheme of the CRF.
    margin_cost (float): 0 for the negative log-likelihood, > 0 for softmax-margin.
    corpus (Optional[str]): train on and annotate only docs of this corpus
        (doc.user_data["lmcrf_corpus"], set by spacy_lmcrf.TaskCorpora.v1) or of none.
    max_loss_per_token (float): training stops with an error when a batch's loss per
        token exceeds this (a diverged model: a working CRF starts near the log of its
        number of tags) or is not finite; 0: only non-finite losses stop it.
    scorer (Optional[Callable]): the scoring method.
    """
    component = CRFSpanLabeler(
        nlp.vocab,
        model,
        name,
        scheme=scheme,
        margin_cost=margin_cost,
        corpus=corpus,
        max_loss_per_token=max_loss_per_token,
        spans_key=spans_key,
        scorer=scorer,
    )
    component.find_shared_lms(nlp)
    return component


class CRFSpanLabeler(CRFSequenceLabeler):
    def _labels_from_examples(self, examples: Iterable[Example]) -> Iterable[str]:
        key = self.cfg["spans_key"]
        return {span.label_ for eg in examples for span in eg.reference.spans.get(key, [])}

    def _has_annotation(self, example: Example) -> bool:
        # a doc without the key is unannotated; with an empty group, it has no spans
        return self.cfg["spans_key"] in example.reference.spans

    def _gold_tags(self, example: Example) -> List[Optional[str]]:
        n = len(example.predicted)
        key = self.cfg["spans_key"]
        if key not in example.reference.spans:
            return [None] * n
        gold = list(example.reference.spans[key])
        spans: List[Span3] = []
        missing = [False] * n
        for span in gold:
            aligned = example.get_aligned_spans_y2x([span], allow_overlap=True)
            if aligned:
                spans.extend((s.start, s.end, s.label_) for s in aligned)
            else:
                # no predicted tokens start and end where the span does: its tokens'
                # tags are unknown (marginalised), as lm_crf_ner does for such entities
                for i in _aligned_tokens(example, span):
                    missing[i] = True
        return spans_to_tags(n, spans, self.cfg["scheme"], missing)

    def _write_annotations(self, docs: List[Doc], prediction: CRFPrediction) -> None:
        key = self.cfg["spans_key"]
        # a span labeler has a scheme, so its predictions have spans and scores
        assert prediction.spans is not None and prediction.span_scores is not None
        for doc, spans, scores in zip(docs, prediction.spans, prediction.span_scores):
            group = SpanGroup(doc, name=key, spans=[Span(doc, s, e, label=l) for s, e, l in spans])
            group.attrs["scores"] = scores
            doc.spans[key] = group


def _aligned_tokens(example: Example, span: Span) -> List[int]:
    """The predicted tokens that share characters with a reference span."""
    return sorted({int(i) for i in example.alignment.y2x[span.start : span.end]})
