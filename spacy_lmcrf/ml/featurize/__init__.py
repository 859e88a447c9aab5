"""Docs -> padded numpy batches (no torch), each a segments.SegmentBatch that names its torch
module's inputs: character streams (char_stream), words (words), segment strings (strings),
LM word ids (lm_words); and the vocabularies a tok2vec builds from its training docs and the
pipeline's vectors (vocabularies, vocab)."""
