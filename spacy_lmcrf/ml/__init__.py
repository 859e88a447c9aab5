from .crf_tagger import CRFScores, build_crf_tagger
from .lm_lstm_tok2vec import build_lm_lstm_tok2vec

__all__ = ["CRFScores", "build_crf_tagger", "build_lm_lstm_tok2vec"]
