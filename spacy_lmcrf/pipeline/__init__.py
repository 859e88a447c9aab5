from .base import CRFPrediction, CRFSequenceLabeler
from .ner import CRFEntityRecognizer, make_lm_crf_ner
from .spans import CRFSpanLabeler, make_lm_crf_spans
from .tagger import CRFTagger, make_lm_crf_tagger

__all__ = [
    "CRFPrediction",
    "CRFSequenceLabeler",
    "CRFEntityRecognizer",
    "CRFSpanLabeler",
    "CRFTagger",
    "make_lm_crf_ner",
    "make_lm_crf_spans",
    "make_lm_crf_tagger",
]
