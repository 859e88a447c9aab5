"""Language-model pretraining on raw text (`spacy lmcrf pretrain-char-lm`)."""
