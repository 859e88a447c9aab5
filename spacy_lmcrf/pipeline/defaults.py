"""The default models of the components: LM-LSTM-CRF with the paper's sizes.

lm_weight = 1.0 (lambda) adds the co-trained LM's loss, the mean cross-entropy per word of
the forward LM plus that of the backward LM over the batch's words, to the CRF loss, a sum
over the batch's sentences: the LM term does not grow with the batch and the CRF term does
(see spacy_lmcrf.LMLSTMTok2Vec.v1).
"""

from thinc.api import Config

# a batch loss per token above this stops training (CRFSequenceLabeler's max_loss_per_token):
# the tiny NER model's loss per token stays <= 11 at Adam learning rates 0.01-1.0
DEFAULT_MAX_LOSS_PER_TOKEN = 100.0

DEFAULT_MODEL_CONFIG = """
[model]
@architectures = "spacy_lmcrf.CRFTagger.v1"
pairwise = "large"
dropout = 0.0
max_length = 128
nO = null

[model.tok2vec]
@architectures = "spacy_lmcrf.LMLSTMTok2Vec.v1"
char_dim = 30
char_hidden = 300
char_depth = 1
highway_depth = 1
use_highway = true
lm_weight = 1.0
word_dim = null
width = 300
depth = 1
dropout = 0.5
min_freq = 5
lowercase = true
include_vectors = true
max_length = 128
max_token_chars = 64
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_MODEL_CONFIG)["model"]
