"""Tests of spacy_lmcrf.pretrain: pretraining character and word LMs on raw text
(`spacy lmcrf pretrain-char-lm` / `pretrain-word-lm`), their checkpoints and exact resume,
through the functions and the CLI."""
