"""The default models of the components: LM-LSTM-CRF with the paper's sizes."""
from thinc.api import Config

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
"""
DEFAULT_MODEL = Config().from_str(DEFAULT_MODEL_CONFIG)["model"]
