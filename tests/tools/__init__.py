"""Tests of the top-level tool modules (conll, conlleval, evaluate, tags, extract's license)
and of the project itself: packaging (setup.py declares every import) and the README's and
CI's commands."""
