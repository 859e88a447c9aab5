"""What a config's [training] and [corpora] name: corpus readers and batchers, optimizers
and schedules, loggers, callbacks, heap trimming; and `spacy lmcrf train`'s atomic saves."""
