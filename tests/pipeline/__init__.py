"""Tests of spacy_lmcrf.pipeline: the lm_crf_* components (overfit, save/load, reliability),
a tok2vec shared by several heads, joint and cross-lingual training of heads, and a pipeline
saved by an older version that must still load."""
