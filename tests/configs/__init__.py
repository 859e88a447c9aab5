"""Tests of the shipped configs/*.cfg: one harness parametrised over every config (valid,
trains, saves and loads), each system's own settings, and `spacy train` / `evaluate` / `init
labels` running them in a fresh process."""
