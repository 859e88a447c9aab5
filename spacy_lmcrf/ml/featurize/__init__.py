"""Docs -> padded numpy batches (no torch): segments, character streams, word ids and the
vocabularies a tok2vec builds from its training docs and the pipeline's vectors."""
