from .bilm_embeddings import build_bilm_embeddings
from .birnn import build_bigru_encoder, build_bilstm_encoder
from .char_encoders import build_char_bigru, build_char_bilstm, build_char_cnn
from .char_tok2vec import build_char_tok2vec
from .contextual_string_embeddings import build_contextual_string_embeddings
from .crf_tagger import CRFGroup, CRFScores, build_crf_tagger
from .lm_lstm_tok2vec import build_lm_lstm_tok2vec
from .psa import build_context_fusion
from .psa_tok2vec import build_psa_tok2vec
from .stacked_embeddings import build_stacked_embeddings
from .taglm_tok2vec import build_taglm_tok2vec
from .torch_encoder import build_torch_encoder
from .with_width import build_with_width
from .word_char_tok2vec import build_word_char_tok2vec
from .word_embed import build_word_embedding
from .word_features_tok2vec import build_word_features_tok2vec

__all__ = [
    "CRFGroup",
    "CRFScores",
    "build_bigru_encoder",
    "build_bilm_embeddings",
    "build_bilstm_encoder",
    "build_char_bigru",
    "build_char_bilstm",
    "build_char_cnn",
    "build_char_tok2vec",
    "build_context_fusion",
    "build_contextual_string_embeddings",
    "build_crf_tagger",
    "build_lm_lstm_tok2vec",
    "build_psa_tok2vec",
    "build_stacked_embeddings",
    "build_taglm_tok2vec",
    "build_torch_encoder",
    "build_with_width",
    "build_word_char_tok2vec",
    "build_word_embedding",
    "build_word_features_tok2vec",
]
