"""Tests of spacy_lmcrf.ml: the CRF (exact against brute force), the tok2vec models of each
system (LM-LSTM-CRF, PSA, TagLM, contextual string embeddings, the baselines' parts), their
torch modules and featurization, and the LM files they load."""
