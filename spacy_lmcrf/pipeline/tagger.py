"""lm_crf_tagger: one tag per token (e.g. part of speech) from a CRF, in token.tag_."""

from typing import Callable, Iterable, List, Optional

from spacy.language import Language
from spacy.tokens import Doc
from spacy.training import Example
from thinc.api import Model

from .base import CRFPrediction, CRFSequenceLabeler
from .defaults import DEFAULT_MAX_LOSS_PER_TOKEN, DEFAULT_MODEL


@Language.factory(
    "lm_crf_tagger",
    assigns=["token.tag"],
    default_config={
        "model": DEFAULT_MODEL,
        "margin_cost": 0.0,
        "corpus": None,
        "max_loss_per_token": DEFAULT_MAX_LOSS_PER_TOKEN,
        "scorer": {"@scorers": "spacy.tagger_scorer.v1"},
    },
    default_score_weights={"tag_acc": 1.0},
)
def make_lm_crf_tagger(
    nlp: Language,
    name: str,
    model: Model,
    margin_cost: float,
    corpus: Optional[str],
    max_loss_per_token: float,
    scorer: Optional[Callable],
) -> "CRFTagger":
    """A CRF token tagger: every token gets one of the tags seen in training.

    model (Model[List[Doc], CRFScores]): the CRF tagger model.
    margin_cost (float): 0 for the negative log-likelihood, > 0 for softmax-margin.
    corpus (Optional[str]): train on and annotate only docs of this corpus
        (doc.user_data["lmcrf_corpus"], set by spacy_lmcrf.TaskCorpora.v1) or of none.
    max_loss_per_token (float): training stops with an error when a batch's loss per
        token exceeds this (a diverged model: a working CRF starts near the log of its
        number of tags) or is not finite; 0: only non-finite losses stop it.
    scorer (Optional[Callable]): the scoring method.
    """
    component = CRFTagger(
        nlp.vocab,
        model,
        name,
        scheme=None,
        margin_cost=margin_cost,
        corpus=corpus,
        max_loss_per_token=max_loss_per_token,
        scorer=scorer,
    )
    component.find_shared_lms(nlp)
    return component


class CRFTagger(CRFSequenceLabeler):
    def _labels_from_examples(self, examples: Iterable[Example]) -> Iterable[str]:
        return {token.tag_ for eg in examples for token in eg.reference if token.tag_}

    def _has_annotation(self, example: Example) -> bool:
        return example.reference.has_annotation("TAG")

    def _gold_tags(self, example: Example) -> List[Optional[str]]:
        return [tag or None for tag in example.get_aligned("TAG", as_string=True)]

    def _write_annotations(self, docs: List[Doc], prediction: CRFPrediction) -> None:
        for doc, tags in zip(docs, prediction.tags):
            for token, tag in zip(doc, tags):
                token.tag_ = tag
