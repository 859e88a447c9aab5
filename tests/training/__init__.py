"""Tests of spacy_lmcrf.training: optimizers and schedules, memory trimming, atomic pipeline
saves and `spacy lmcrf train`, and the loggers, callbacks and corpus readers that `spacy train`
uses."""
