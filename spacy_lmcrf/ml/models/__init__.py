"""Every registered architecture a config names: Thinc models (tok2vecs, the CRF tagger)
and the builders of the torch parts they compose (encoders, character encoders, word
embeddings, context fusion). Importing this package registers them."""
