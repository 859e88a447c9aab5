"""Plain torch nn.Modules, usable on their own: the CRF head, RNN and character encoders,
highway layers, position-aware self-attention, LM-LSTM-CRF's encoder and co-trained
character LM, the pretrained character and word LMs with their vocabularies and file format,
the modules of the LM embeddings built on them, and their weight initialisations (init.py).
No spaCy or Thinc import: the Thinc side is ml/torch_bridge.py and ml/models."""
