from .models.bilm_embeddings import build_bilm_embeddings
from .models.char_encoders import build_char_bigru, build_char_bilstm, build_char_cnn
from .models.char_tok2vec import build_char_tok2vec
from .models.context_fusion import build_context_fusion
from .models.contextual_string_embeddings import build_contextual_string_embeddings
from .models.crf_tagger import CRFGroup, CRFScores, build_crf_tagger
from .models.encoders import build_bigru_encoder, build_bilstm_encoder
from .models.lm_lstm_tok2vec import build_lm_lstm_tok2vec
from .models.psa_tok2vec import build_psa_tok2vec
from .models.stacked_embeddings import build_stacked_embeddings
from .models.taglm_tok2vec import build_taglm_tok2vec
from .models.torch_encoder import build_torch_encoder
from .models.with_width import build_with_width
from .models.word_char_tok2vec import build_word_char_tok2vec
from .models.word_embed import build_word_embedding
from .models.word_features_tok2vec import build_word_features_tok2vec

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
